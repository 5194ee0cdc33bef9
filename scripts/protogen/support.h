/* Zeroed memory, or NULL when out of memory. */
void *flpc_calloc(size_t count, size_t size);

/* A NUL-terminated copy of `len` bytes, or NULL when out of memory. */
char *flpc_strndup(const char *bytes, size_t len);

enum {
    FLPC_UNPACK_OK = 0,
    /* libprotobuf-c refused the bytes. */
    FLPC_UNPACK_INVALID = 1,
    /* A string field holds a NUL byte, which a C string would silently cut short. */
    FLPC_UNPACK_NUL_IN_STRING = 2,
};

/* protobuf_c_message_unpack with an allocator that records each allocation's size, then a walk
   over every string of the result checking that it is as long as the bytes on the wire.
   Returns NULL (and the reason in *status) on failure. Free the result with
   flpc_free_unpacked, never with the default allocator. */
ProtobufCMessage *flpc_unpack(const ProtobufCMessageDescriptor *descriptor, size_t len, const uint8_t *data, int *status);
void flpc_free_unpacked(ProtobufCMessage *message);
