import NIOCore

/// Runs a task's jobs on one NIO event loop (SE-0417 task executor preference): the bench's
/// workers run on the event loop of their client's connections, so a request's answer resumes
/// its worker in the same loop iteration that read it, with no hop to Swift's cooperative pool
/// and back (a thread wake-up each way). Default actors a preferring task calls into (the
/// client's connection pool) run there too.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `eventLoop` is immutable and event loops are safe from any thread.
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
