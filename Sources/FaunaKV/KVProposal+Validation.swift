extension KVProposal {
    /// Checks every limit and rule of docs/KV-COMMANDS.md ("Limits", "Rules"). The decoder runs
    /// it on every decoded proposal; a client or leader runs it before proposing.
    public func validate() throws(KVCommandError) {
        try validateRules()
        let size = encoded().count
        guard size <= KVLimits.proposalBytesMax else {
            throw KVCommandError(.txnSize, "proposal: got \(size) encoded bytes, want <= \(KVLimits.proposalBytesMax)")
        }
    }
}

extension KVProposal {
    /// Everything `validate()` checks but the encoded size (the decoder has checked that on the
    /// input already, and encoding again would copy every value once more per entry).
    func validateRules() throws(KVCommandError) {
        if let session, session.sequence < .first {
            throw KVCommandError(.invalidField, "session sequence: got \(session.sequence), want >= \(SequenceNumber.first)")
        }
        if let principal, !principal.isEmpty { try KVAuthLimits.validateName(principal, "principal") }
        try command.validate()
    }
}

extension KVCommand {
    /// Checks the command's limits and rules (not the encoded size: see `KVProposal.validate`).
    public func validate() throws(KVCommandError) {
        switch self {
        case .put(let put): try put.validate()
        case .deleteRange(let delete): try delete.range.validate("delete range")
        case .txn(let txn): try txn.validate()
        case .compact(let revision):
            guard revision >= Revision(1) else {
                throw KVCommandError(.invalidField, "compact revision: got \(revision), want >= 1")
            }
        case .initCluster(let id):
            guard id.count == KVLimits.clusterIDBytes else {
                throw KVCommandError(.invalidField, "cluster ID: got \(id.count) bytes, want \(KVLimits.clusterIDBytes)")
            }
        case .upgradeLeaves: break
        case .upgradeState(let level):
            guard (1...KVStateLevel.current).contains(level) else {
                throw KVCommandError(.invalidField, "state level: got \(level), want 1...\(KVStateLevel.current)")
            }
        case .leaseGrant(let grant):
            guard (1...KVLimits.leaseTTLSecondsMax).contains(grant.ttlSeconds) else {
                throw KVCommandError(.invalidField, "lease TTL: got \(grant.ttlSeconds) s, want 1...\(KVLimits.leaseTTLSecondsMax)")
            }
        case .leaseRevoke(let id):
            guard id != 0 else { throw KVCommandError(.invalidField, "lease ID: got 0, want >= 1") }
        case .leaseCheckpoint(let list):
            guard list.count <= KVLimits.leaseCheckpointsMax else {
                throw KVCommandError(.txnSize, "lease checkpoints: got \(list.count), want <= \(KVLimits.leaseCheckpointsMax)")
            }
        case .auth(let command): try command.validate()
        }
    }
}

extension KVPut {
    func validate() throws(KVCommandError) {
        guard (1...KVLimits.keyBytesMax).contains(key.count) else {
            throw KVCommandError(.keyLength, "put key: got \(key.count) bytes, want 1...\(KVLimits.keyBytesMax)")
        }
        guard value.count <= KVLimits.valueBytesMax else {
            throw KVCommandError(.valueLength, "put value: got \(value.count) bytes, want <= \(KVLimits.valueBytesMax)")
        }
    }
}

extension KeyRange {
    func validate(_ field: String) throws(KVCommandError) {
        guard start.count <= KVLimits.keyBytesMax else {
            throw KVCommandError(.keyLength, "\(field) start: got \(start.count) bytes, want <= \(KVLimits.keyBytesMax)")
        }
        if let end, end.count > KVLimits.rangeEndBytesMax {
            throw KVCommandError(.keyLength, "\(field) end: got \(end.count) bytes, want <= \(KVLimits.rangeEndBytesMax)")
        }
    }
}

extension KVRangeRequest {
    /// Checks the request's limits (also used by `KVStateMachine.range`).
    public func validate() throws(KVCommandError) {
        try range.validate("range")
        if let limit, limit < 1 {
            throw KVCommandError(.invalidField, "range limit: got \(limit), want >= 1 or none")
        }
    }
}

extension KVTxn {
    func validate() throws(KVCommandError) {
        guard compares.count <= KVLimits.txnComparesMax else {
            throw KVCommandError(.txnSize, "txn compares: got \(compares.count), want <= \(KVLimits.txnComparesMax)")
        }
        for (name, ops) in [("success", success), ("failure", failure)] {
            guard ops.count <= KVLimits.txnOperationsMax else {
                throw KVCommandError(.txnSize, "txn \(name) operations: got \(ops.count), want <= \(KVLimits.txnOperationsMax)")
            }
        }
        for compare in compares {
            try compare.range.validate("compare")
            if case .value(let v) = compare.target, v.count > KVLimits.valueBytesMax {
                throw KVCommandError(.valueLength, "compare value: got \(v.count) bytes, want <= \(KVLimits.valueBytesMax)")
            }
        }
        try KVTxn.validateBranch(success, "success")
        try KVTxn.validateBranch(failure, "failure")
    }

    /// etcd's checkIntervals: within one branch, no key is put twice and no put lies in a
    /// deleted range, because all of them share one revision and history keeps one entry per
    /// (key, revision).
    private static func validateBranch(_ ops: [KVOperation], _ name: String) throws(KVCommandError) {
        // Arrays, not only a Set, so that which key an error names is the same on every replica
        // (Set order is seeded per process) and stored results stay deterministic.
        var putKeys = Set<[UInt8]>()
        var putKeysInOrder: [[UInt8]] = []
        var deleted: [KeyRange] = []
        for op in ops {
            switch op {
            case .put(let put):
                try put.validate()
                guard putKeys.insert(put.key).inserted else {
                    throw KVCommandError(.duplicateKeyInTxn, "txn \(name): got key \(put.key) put twice, want each key written once")
                }
                putKeysInOrder.append(put.key)
            case .deleteRange(let delete):
                try delete.range.validate("txn delete range")
                deleted.append(delete.range)
            case .range(let request):
                try request.validate()
            }
        }
        for key in putKeysInOrder where deleted.contains(where: { $0.contains(key) }) {
            throw KVCommandError(.duplicateKeyInTxn, "txn \(name): got key \(key) both put and deleted, want each key written once")
        }
    }
}
