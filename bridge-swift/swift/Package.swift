// swift-tools-version:6.0
// The Swift side of crun-shimd's macOS VM backend: a static library that
// crun-shimd links (see ../build-macos.sh). Sources/VMBridge/Generated holds
// the glue swift-bridge generates from ../src/ffi.rs; build-macos.sh writes
// it there before `swift build`.
import PackageDescription

let package = Package(
    name: "VMBridge",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "VMBridge", type: .static, targets: ["VMBridge"])
    ],
    targets: [
        .target(
            name: "VMBridge",
            path: "Sources/VMBridge",
            swiftSettings: [
                .unsafeFlags([
                    "-import-objc-header",
                    Context.packageDirectory + "/Sources/VMBridge/include/bridging-header.h",
                ])
            ],
            linkerSettings: [.linkedFramework("Virtualization")]
        )
    ],
    swiftLanguageModes: [.v5]
)
