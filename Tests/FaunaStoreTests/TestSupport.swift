import Foundation

/// A fresh directory under the system temp dir, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ label: String = "fauna-store-test") {
        let base = FileManager.default.temporaryDirectory.path
        path = "\(base)/\(label)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func sub(_ name: String) -> String { "\(path)/\(name)" }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

import FaunaRaft
@testable import FaunaStore

extension Store {
    /// What a node does with committed entries: the entry log first (the journal is the log),
    /// then the apply. Appends whatever of `entries` lies beyond the log's last index.
    @discardableResult
    func applyLogged(_ entries: [Entry], confState: ConfState? = nil, sync: Bool = false) throws(StoreError) -> [AppliedEntry] {
        let last = raftLog.currentView.lastIndex
        let new = entries.filter { $0.index > last }
        if !new.isEmpty { try raftLog.persist(RaftLogUpdate(entries: new)) }
        return try apply(entries, confState: confState, sync: sync)
    }
}
