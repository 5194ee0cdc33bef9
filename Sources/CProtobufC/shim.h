#ifndef FAULTLINE_CPROTOBUFC_SHIM_H
#define FAULTLINE_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
