/* The libcrun headers libcrun-sys binds. */
#include <container.h>
#include <error.h>
#include <status.h>
