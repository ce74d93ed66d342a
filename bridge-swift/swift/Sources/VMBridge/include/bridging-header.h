/* The C side of the glue swift-bridge generates (build-macos.sh copies it
 * into Generated/). */
#ifndef VMBRIDGE_BRIDGING_HEADER_H
#define VMBRIDGE_BRIDGING_HEADER_H
#include "../Generated/SwiftBridgeCore.h"
#include "../Generated/libcrun-shim-bridge-swift/libcrun-shim-bridge-swift.h"
#endif
