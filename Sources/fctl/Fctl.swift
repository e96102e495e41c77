import ArgumentParser
import FctlCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// fctl: the data and admin command line of Fauna (docs/CLI.md).
struct Fctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fctl",
        abstract: "Read and write a Fauna cluster, and administer it.",
        discussion: """
            Nodes come from --config (default ./cluster.toml: the client address of every node) or \
            --endpoints host:port,... Keys and values are UTF-8 text unless --hex or --base64; \
            output shows text when printable, else 0x-hex. Full reference: docs/CLI.md.

            EXIT CODES
              0  ok
              1  not found; txn else branch ran; put --if-absent found the key;
                 hashkv digests differ; bench: some requests failed
              2  usage error (bad arguments or options)
              3  cluster unavailable (no leader, no node reachable, timeout)
              4  request rejected by the server (invalid, compacted, future revision)
              5  internal error (bug, broken stream, local IO error)
              6  verification failed: a proof, signature or consistency check failed,
                 or audit found a node that differs
              7  security: TLS failed (another CA, expired certificate, TLS on one
                 side only) or a --ca/--cert/--key file cannot be read; or auth:
                 no user (authRequired), unknown user or wrong password
                 (authFailed), a permission missing (permissionDenied)

            TLS (docs/SECURITY.md): with [tls] in the config, fctl trusts its ca and
            presents its client_cert; --ca, --cert and --key override them.

            USERS (docs/SECURITY.md): once `fctl auth enable` ran, each request runs as
            the user its connection is bound to: --user NAME (password in
            $FAUNA_PASSWORD or --password-file), else the client certificate's
            common name.
            """,
        subcommands: [
            Put.self, Get.self, Del.self, RangeCommand.self, Txn.self, Compact.self, Watch.self, LeaseCommand.self, LockCommand.self, ElectCommand.self,
            Status.self, Members.self, MemberCommand.self, Leader.self, Snapshot.self, HashKV.self, Bench.self,
            Verify.self, Proof.self, VerifyProof.self, Audit.self, Trust.self, AuthCommand.self, UserCommand.self, RoleCommand.self,
        ]
    )
}

/// Runs fctl, mapping every failure to a documented exit code: ArgumentParser's usage errors
/// (64 by default) become 2, help and version stay 0.
@main enum FctlMain {
    static func main() async {
        do {
            var command = try Fctl.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as FctlError {
            printError("fctl: \(error.message)")
            exit(error.exitCode.rawValue)
        } catch {
            let code = Fctl.exitCode(for: error)
            let message = Fctl.fullMessage(for: error)
            if code == .success {
                print(message)
                exit(0)
            }
            printError(message)
            // Validation and parse failures are usage errors: documented exit code 2.
            exit(code == .validationFailure ? ExitStatus.usage.rawValue : code.rawValue)
        }
    }
}

/// Writes a line to stderr.
func printError(_ line: String) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    FileHandle.standardError.write(Data(text.utf8))
}
