// libFuzzer target for the frame and message decoders (tools/fuzz).
//
// Built by tools/fuzz with `-sanitize=fuzzer,address -parse-as-library -DFUZZING`: then
// libFuzzer provides `main` and calls `LLVMFuzzerTestOneInput`. A plain `swift build` compiles
// the `#else` branch instead, an `@main` that writes the seed corpus or runs saved inputs
// (crash reproducers) through the same checks. (No main.swift: its top-level code would not
// parse under -parse-as-library, even in an inactive #if branch.)
//
// Input layout: byte 0 selects the mode.
//   even: the rest is a byte stream; decode frames until it ends or breaks a rule, with both
//         the pure and the ByteBuffer decoder, which must agree; decode each frame's body.
//   odd:  byte 1 picks a frame kind (index into FrameKind.allCases), the rest is its body:
//         this reaches the body decoders without having to forge a CRC.
// Whatever decodes must re-encode to a frame that decodes to the same message; bodies of
// FaunaRPC's own codecs must re-encode to the same bytes (one encoding per message).

import FaunaRPC
import NIOCore

#if canImport(Glibc)
import Glibc
#endif
#if FUZZING
import CFuzzerDriver
#endif

enum FuzzTarget {
    static let bodyBytesMax = 1 << 20

    static func run(_ data: [UInt8]) {
        guard let mode = data.first else { return }
        if mode & 1 == 0 {
            stream(Array(data.dropFirst()))
        } else if data.count >= 2 {
            let kinds = FrameKind.allCases
            let kind = kinds[Int(data[1]) % kinds.count]
            body(kind, Array(data.dropFirst(2)))
        }
    }

    static func stream(_ bytes: [UInt8]) {
        var rest = bytes
        var buffer = ByteBuffer(bytes: bytes)
        while true {
            let pure: Result<(frame: Frame, consumed: Int)?, RPCDecodingError> = Result { () throws(RPCDecodingError) in
                try Frame.decode(rest, bodyBytesMax: bodyBytesMax)
            }
            let viaNIO: Result<Frame?, RPCDecodingError> = Result { () throws(RPCDecodingError) in
                try FrameDecoder.decodeFrame(&buffer, bodyBytesMax: bodyBytesMax)
            }
            switch (pure, viaNIO) {
            case (.success(let a?), .success(let b?)):
                precondition(a.frame == b, "decoders disagree: \(a.frame) vs \(b)")
                precondition(a.frame.encoded() == Array(rest[..<a.consumed]), "frame does not re-encode to its bytes")
                body(a.frame.kind, a.frame.body, flags: a.frame.flags)
                rest.removeFirst(a.consumed)
            case (.success(nil), .success(nil)):
                return
            case (.failure(let a), .failure(let b)):
                precondition(a.code == b.code, "decoders disagree: \(a) vs \(b)")
                return
            default:
                preconditionFailure("decoders disagree: \(pure) vs \(viaNIO)")
            }
        }
    }

    static func body(_ kind: FrameKind, _ body: [UInt8], flags: FrameFlags = []) {
        guard let message = try? RPCMessage(kind: kind, body: body) else { return }
        precondition(message.kind == kind, "decoded \(message.kind) from a \(kind) body")
        let again = Frame(message, requestID: RequestID(7), flags: flags)
        guard let decoded = try? Frame.decode(again.encoded(), bodyBytesMax: Int(UInt32.max)) else {
            preconditionFailure("re-encoded \(kind) frame does not decode")
        }
        precondition((try? RPCMessage(decoded.frame)) == message, "\(kind) does not round-trip")
        switch kind {
        case .write, .writeResponse, .read, .readResponse: break  // FaunaKV's codecs
        default: precondition(again.body == body, "\(kind) body is not canonical")
        }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    FuzzTarget.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// SwiftPM links executables with `--defsym main=rpc_fuzz_main` (testable executables), so
/// libFuzzer's own `main` is never pulled in; this entry point runs its driver instead.
@_cdecl("rpc_fuzz_main")
public func rpcFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data, size) }
}
#else
/// A plain build: `rpc-fuzz --write-seeds DIR` writes the seed corpus; `rpc-fuzz FILE...`
/// runs saved inputs (crash reproducers).
@main
enum RPCFuzzMain {
    static func main() {
        // `rpc-fuzz --write-seeds DIR`: write the seed corpus. `rpc-fuzz FILE...`: reproduce.
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--write-seeds", arguments.count == 2 {
            for (i, input) in Seeds.inputs().enumerated() {
                FuzzTarget.run(input)
                guard let file = fopen("\(arguments[1])/seed-\(i)", "wb") else {
                    print("rpc-fuzz: cannot write to \(arguments[1])")
                    exit(2)
                }
                _ = input.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
                fclose(file)
            }
            exit(0)
        }
        for path in arguments {
            guard let file = fopen(path, "rb") else {
                print("rpc-fuzz: cannot open \(path)")
                exit(2)
            }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&chunk, 1, chunk.count, file)
                if n <= 0 { break }
                bytes.append(contentsOf: chunk[..<n])
            }
            fclose(file)
            FuzzTarget.run(bytes)
            print("rpc-fuzz: \(path): ok (\(bytes.count) bytes)")
        }
    }
}
#endif
