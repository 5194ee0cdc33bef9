#include <stdlib.h>
#include <string.h>

void *flpc_calloc(size_t count, size_t size) { return calloc(count ? count : 1, size ? size : 1); }

char *flpc_strndup(const char *bytes, size_t len) {
    char *s = malloc(len + 1);
    if (s == NULL) return NULL;
    if (len > 0) memcpy(s, bytes, len);
    s[len] = 0;
    return s;
}

/* Each block starts with its size, padded to keep the caller's part maximally aligned.
   protobuf-c allocates a string of n wire bytes as exactly n + 1 bytes. */
typedef union {
    size_t size;
    max_align_t align;
} flpc_header;

static void *flpc_sized_alloc(void *data, size_t size) {
    (void)data;
    if (size > SIZE_MAX - sizeof(flpc_header)) return NULL;
    flpc_header *header = malloc(sizeof(flpc_header) + size);
    if (header == NULL) return NULL;
    header->size = size;
    return header + 1;
}

static void flpc_sized_free(void *data, void *pointer) {
    (void)data;
    if (pointer != NULL) free((flpc_header *)pointer - 1);
}

static ProtobufCAllocator flpc_sized_allocator = {
    .alloc = flpc_sized_alloc,
    .free = flpc_sized_free,
    .allocator_data = NULL,
};

static int flpc_string_intact(const char *string, const void *default_value) {
    if (string == NULL || string == default_value || string == protobuf_c_empty_string) return 1;
    return strlen(string) + 1 == ((const flpc_header *)string - 1)->size;
}

/* Schemas have no recursive types (the generator refuses them), so the depth is bounded. */
static int flpc_strings_intact(const ProtobufCMessage *message) {
    const ProtobufCMessageDescriptor *descriptor = message->descriptor;
    for (unsigned i = 0; i < descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &descriptor->fields[i];
        if (field->type != PROTOBUF_C_TYPE_STRING && field->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *member = (const char *)message + field->offset;
        if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)((const char *)message + field->quantifier_offset);
            if (which != field->id) continue;
        }
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t count = *(const size_t *)((const char *)message + field->quantifier_offset);
            void *const *items = *(void *const *const *)member;
            for (size_t j = 0; j < count; j++) {
                if (field->type == PROTOBUF_C_TYPE_STRING) {
                    if (!flpc_string_intact(items[j], NULL)) return 0;
                } else if (items[j] != NULL && !flpc_strings_intact(items[j])) {
                    return 0;
                }
            }
        } else if (field->type == PROTOBUF_C_TYPE_STRING) {
            if (!flpc_string_intact(*(const char *const *)member, field->default_value)) return 0;
        } else {
            const ProtobufCMessage *child = *(const ProtobufCMessage *const *)member;
            if (child != NULL && !flpc_strings_intact(child)) return 0;
        }
    }
    return 1;
}

ProtobufCMessage *flpc_unpack(const ProtobufCMessageDescriptor *descriptor, size_t len, const uint8_t *data, int *status) {
    ProtobufCMessage *message = protobuf_c_message_unpack(descriptor, &flpc_sized_allocator, len, data);
    if (message == NULL) {
        *status = FLPC_UNPACK_INVALID;
        return NULL;
    }
    if (!flpc_strings_intact(message)) {
        protobuf_c_message_free_unpacked(message, &flpc_sized_allocator);
        *status = FLPC_UNPACK_NUL_IN_STRING;
        return NULL;
    }
    *status = FLPC_UNPACK_OK;
    return message;
}

void flpc_free_unpacked(ProtobufCMessage *message) {
    protobuf_c_message_free_unpacked(message, &flpc_sized_allocator);
}
