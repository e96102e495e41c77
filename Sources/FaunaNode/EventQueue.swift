import Foundation

/// A multi-producer, single-consumer queue with a bound, for the node's owner thread and apply
/// stage. Producers never block: `offer` refuses an element beyond `capacity` (the caller
/// answers `overloaded` or drops, as Raft tolerates), `post` is for the node's own
/// completions, whose number is bounded by design (one persist in flight, a bounded apply
/// queue), and for client jobs that hold a slot of a `ClientJobLimiter` (a few at most), so it
/// never refuses. Never `post` a job a client caused without such a slot: an unbounded stream
/// of them is how a client could stall the apply stage. The consumer blocks in `take` until
/// elements or a deadline.
///
/// `@unchecked Sendable`: every field is read and written under `condition`'s lock.
final class EventQueue<Element: Sendable>: @unchecked Sendable {
    let capacity: Int
    private let condition = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private var isClosed = false
    /// The consumer, now waiting, wants quiet elements to wake it too (`take`'s argument).
    private var consumerWantsQuiet = true

    init(capacity: Int) {
        precondition(capacity > 0, "queue capacity \(capacity)")
        self.capacity = capacity
    }

    /// Adds `element` unless the queue holds `limit` (at most `capacity`) elements or is
    /// closed. A lower limit for one kind of element keeps room for the others (client
    /// requests must not crowd out Raft messages).
    @discardableResult
    func offer(_ element: Element, limit: Int? = nil) -> Bool {
        condition.withLock {
            guard !isClosed, items.count - head < Swift.min(limit ?? capacity, capacity) else { return false }
            items.append(element)
            condition.signal()
            return true
        }
    }

    /// Elements waiting now.
    var count: Int { condition.withLock { items.count - head } }

    /// Adds `element` regardless of the bound (internal completions, slot-holding client jobs
    /// only). Dropped once closed.
    func post(_ element: Element) {
        condition.withLock {
            guard !isClosed else { return }
            items.append(element)
            condition.signal()
        }
    }

    /// Like `post`, but wakes a waiting consumer only if it asked to be woken by such elements
    /// (`take(wakeForQuiet:)`): otherwise the element waits for the next element or deadline.
    /// For reports the consumer needs soon, not now (a routine apply report: the owner would
    /// wake for it once per put only to note the new applied index).
    func postQuietly(_ element: Element) {
        condition.withLock {
            guard !isClosed else { return }
            items.append(element)
            if consumerWantsQuiet { condition.signal() }
        }
    }

    /// Waits until at least one element is queued or `deadline` passes (nil: no deadline),
    /// then removes and returns up to `max` elements in order (possibly none). Returns nil
    /// once closed and empty. With `wakeForQuiet` false, a quiet element queued during the
    /// wait does not end it (an element already queued does: it is returned at once).
    func take(until deadline: Date?, max: Int, wakeForQuiet: Bool = true) -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        consumerWantsQuiet = wakeForQuiet
        defer { consumerWantsQuiet = true }
        while items.count == head && !isClosed {
            guard let deadline else {
                condition.wait()  // (wait(until: .distantFuture) overflows on Linux)
                continue
            }
            if !condition.wait(until: deadline) { break }
        }
        if items.count == head { return isClosed ? nil : [] }
        let end = Swift.min(items.count, head + max)
        let out = Array(items[head..<end])
        head = end
        if head == items.count {
            items.removeAll(keepingCapacity: items.capacity <= 4 * capacity)
            head = 0
        } else if head > 4096 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return out
    }

    /// Refuses further elements; `take` returns what is left, then nil.
    func close() {
        condition.withLock {
            isClosed = true
            condition.broadcast()
        }
    }
}
