#ifndef FAULTLINE_CLIBPQ_SHIM_H
#define FAULTLINE_CLIBPQ_SHIM_H
// pkg-config supplies the include path (/usr/include/postgresql on Debian).
#include <libpq-fe.h>
#endif
