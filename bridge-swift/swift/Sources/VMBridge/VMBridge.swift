// VMBridge: crun-shimd's macOS VM backend, Swift side.
//
// Boots the Linux guest built by docker/ with Apple's Virtualization.framework
// (VZLinuxBootLoader, virtio console, vsock, NAT network, virtio-fs shares,
// Rosetta where installed) as Rust's VmSpec describes it, and serves the
// guest's vsock on a Unix socket speaking hybrid vsock: a client writes
// "CONNECT <port>\n", the relay connects to that guest port with
// VZVirtioSocketDevice.connect(toPort:) and answers "OK <port>\n", then both
// directions are copied until either side closes. crun-shimd dials that
// socket exactly as it dials vhost-device-vsock's on Linux.
//
// Rust calls the methods below through the glue swift-bridge generates from
// bridge-swift/src/ffi.rs (copied into Generated/ by build-macos.sh). Every
// Virtualization.framework call happens on `queue`, as the framework wants.

import Foundation
import Virtualization

extension VmError: Error {}

public final class VMBridge: NSObject, VZVirtualMachineDelegate, @unchecked Sendable {
    private let spec: VmSpec
    private let queue = DispatchQueue(label: "libcrun-shim.vmbridge")
    private var machine: VZVirtualMachine?
    private var relay: VsockRelay?
    private var console: FileHandle?
    private var lastErrorMessage = ""
    private var stopReason: String?
    private var stopWaiters: [CheckedContinuation<String, Never>] = []

    init(spec: VmSpec) {
        self.spec = spec
        super.init()
    }

    func last_error() -> String {
        queue.sync { lastErrorMessage }
    }

    private func fail(_ error: VmError, _ message: String) -> VmError {
        queue.sync { lastErrorMessage = message }
        return error
    }

    /// The configuration VmSpec describes, validated.
    private func configuration() throws -> VZVirtualMachineConfiguration {
        let config = VZVirtualMachineConfiguration()
        config.cpuCount = Int(spec.cpus())
        config.memorySize = spec.memory_bytes()
        config.platform = VZGenericPlatformConfiguration()

        let boot = VZLinuxBootLoader(kernelURL: URL(fileURLWithPath: spec.kernel().toString()))
        boot.initialRamdiskURL = URL(fileURLWithPath: spec.initramfs().toString())
        boot.commandLine = spec.command_line().toString()
        config.bootLoader = boot

        // The guest's console (hvc0) goes to the console log, as QEMU's
        // serial port does on Linux.
        let logPath = spec.console_log().toString()
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        console = log
        let serial = VZVirtioConsoleDeviceSerialPortConfiguration()
        serial.attachment = VZFileHandleSerialPortAttachment(
            fileHandleForReading: nil, fileHandleForWriting: log)
        config.serialPorts = [serial]

        config.entropyDevices = [VZVirtioEntropyDeviceConfiguration()]
        config.memoryBalloonDevices = [VZVirtioTraditionalMemoryBalloonDeviceConfiguration()]
        config.socketDevices = [VZVirtioSocketDeviceConfiguration()]

        var disks: [VZStorageDeviceConfiguration] = []
        for i in 0..<spec.disk_count() {
            let attachment = try VZDiskImageStorageDeviceAttachment(
                url: URL(fileURLWithPath: spec.disk_path(i).toString()),
                readOnly: spec.disk_read_only(i))
            disks.append(VZVirtioBlockDeviceConfiguration(attachment: attachment))
        }
        config.storageDevices = disks

        if spec.nat() {
            let net = VZVirtioNetworkDeviceConfiguration()
            net.attachment = VZNATNetworkDeviceAttachment()
            config.networkDevices = [net]
        }

        var shares: [VZDirectorySharingDeviceConfiguration] = []
        for i in 0..<spec.share_count() {
            let fs = VZVirtioFileSystemDeviceConfiguration(tag: spec.share_tag(i).toString())
            fs.share = VZSingleDirectoryShare(
                directory: VZSharedDirectory(
                    url: URL(fileURLWithPath: spec.share_path(i).toString()),
                    readOnly: spec.share_read_only(i)))
            shares.append(fs)
        }
        #if arch(arm64)
        if spec.rosetta() {
            guard VZLinuxRosettaDirectoryShare.availability == .installed else {
                throw NSError(domain: "VMBridge", code: 1, userInfo: [
                    NSLocalizedDescriptionKey:
                        "Rosetta is not installed (softwareupdate --install-rosetta)"
                ])
            }
            let rosetta = VZVirtioFileSystemDeviceConfiguration(tag: "rosetta")
            rosetta.share = try VZLinuxRosettaDirectoryShare()
            shares.append(rosetta)
        }
        #else
        if spec.rosetta() {
            throw NSError(domain: "VMBridge", code: 1, userInfo: [
                NSLocalizedDescriptionKey: "Rosetta needs Apple silicon"
            ])
        }
        #endif
        config.directorySharingDevices = shares

        try config.validate()
        return config
    }

    /// Boots the VM and starts serving its vsock relay.
    func start() async throws(VmError) {
        let config: VZVirtualMachineConfiguration
        do {
            config = try configuration()
        } catch {
            throw fail(.InvalidConfiguration, "\(error)")
        }
        let vm: VZVirtualMachine = queue.sync {
            let vm = VZVirtualMachine(configuration: config, queue: queue)
            vm.delegate = self
            return vm
        }
        do {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
                queue.async {
                    vm.start { result in done.resume(with: result) }
                }
            }
        } catch {
            throw fail(.StartFailed, "\(error)")
        }
        queue.sync { machine = vm }
        guard let device = queue.sync(execute: { vm.socketDevices.first as? VZVirtioSocketDevice })
        else {
            throw fail(.StartFailed, "the VM has no vsock device")
        }
        do {
            let relay = try VsockRelay(path: spec.relay_socket().toString(), device: device, queue: queue)
            relay.serve()
            queue.sync { self.relay = relay }
        } catch {
            throw fail(.RelayFailed, "\(error)")
        }
    }

    /// Stops the VM at once (crun-shimd has already asked the guest's init
    /// to power off and waited for it).
    func stop() async throws(VmError) {
        guard let vm = queue.sync(execute: { machine }) else { return }
        do {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
                queue.async {
                    if vm.state == .stopped {
                        done.resume()
                    } else {
                        vm.stop { error in
                            if let error { done.resume(throwing: error) } else { done.resume() }
                        }
                    }
                }
            }
        } catch {
            throw fail(.StopFailed, "\(error)")
        }
        stopped("stopped by crun-shimd")
    }

    /// Returns when the VM has stopped, saying why.
    func wait_until_stopped() async -> String {
        await withCheckedContinuation { (waiter: CheckedContinuation<String, Never>) in
            queue.async {
                if let reason = self.stopReason {
                    waiter.resume(returning: reason)
                } else {
                    self.stopWaiters.append(waiter)
                }
            }
        }
    }

    private func stopped(_ reason: String) {
        queue.async {
            guard self.stopReason == nil else { return }
            self.stopReason = reason
            self.relay?.close()
            try? self.console?.close()
            for waiter in self.stopWaiters { waiter.resume(returning: reason) }
            self.stopWaiters.removeAll()
        }
    }

    // VZVirtualMachineDelegate (called on `queue`).
    public func guestDidStop(_ virtualMachine: VZVirtualMachine) {
        stopped("the guest powered off")
    }

    public func virtualMachine(_ virtualMachine: VZVirtualMachine, didStopWithError error: Error) {
        stopped("the VM stopped: \(error)")
    }
}

/// A Unix socket serving the guest's vsock ports with the hybrid-vsock
/// handshake.
final class VsockRelay: @unchecked Sendable {
    private let path: String
    private let listener: Int32
    private let device: VZVirtioSocketDevice
    private let queue: DispatchQueue

    init(path: String, device: VZVirtioSocketDevice, queue: DispatchQueue) throws {
        self.path = path
        self.device = device
        self.queue = queue
        unlink(path)
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw POSIXError(.ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 64) == 0 else {
            let code = errno
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
        listener = fd
    }

    func serve() {
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return  // closed
                }
                Thread.detachNewThread { [self] in handle(client) }
            }
        }
    }

    func close() {
        shutdown(listener, SHUT_RDWR)
        Darwin.close(listener)
        unlink(path)
    }

    /// Reads "CONNECT <port>\n" one byte at a time (what follows is the
    /// guest's), connects, answers, and copies both ways.
    private func handle(_ client: Int32) {
        var line = [UInt8]()
        var byte: UInt8 = 0
        while line.count < 64 {
            guard read(client, &byte, 1) == 1 else { Darwin.close(client); return }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        let words = String(decoding: line, as: UTF8.self).split(separator: " ")
        guard words.count == 2, words[0] == "CONNECT", let port = UInt32(words[1]) else {
            Darwin.close(client)
            return
        }
        let connected = DispatchSemaphore(value: 0)
        var connection: VZVirtioSocketConnection?
        queue.async { [device] in
            device.connect(toPort: port) { result in
                if case .success(let c) = result { connection = c }
                connected.signal()
            }
        }
        connected.wait()
        // Nothing listening on the guest port: close, as vhost-device-vsock does.
        guard let connection else { Darwin.close(client); return }
        let guest = dup(connection.fileDescriptor)
        connection.close()
        let answer = Array("OK \(port)\n".utf8)
        guard guest >= 0, write(client, answer, answer.count) == answer.count else {
            Darwin.close(client)
            if guest >= 0 { Darwin.close(guest) }
            return
        }
        let done = DispatchGroup()
        for (from, to) in [(client, guest), (guest, client)] {
            done.enter()
            Thread.detachNewThread {
                copy(from: from, to: to)
                shutdown(to, SHUT_WR)
                done.leave()
            }
        }
        done.wait()
        Darwin.close(client)
        Darwin.close(guest)
    }
}

/// Copies bytes until end of file or an error.
private func copy(from: Int32, to: Int32) {
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let n = read(from, &buffer, buffer.count)
        if n <= 0 { return }
        var written = 0
        while written < n {
            let w = buffer[written..<n].withUnsafeBytes { write(to, $0.baseAddress, n - written) }
            if w <= 0 { return }
            written += w
        }
    }
}
