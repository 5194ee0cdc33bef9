@testable import FaultlineRPC
import NIOCore
import NIOPosix
import Testing

/// How a client stream moves between connections when one refuses it unprocessed or goes away,
/// driven directly. In a loaded client several requests to move one stream race (the refusal, a
/// write queued on the old connection after it closed, a connection that can no longer open
/// streams); only the one naming the stream's current connection, while the stream still waits
/// to be opened, may act, and a stale one must neither move the stream nor fail its call.
@Suite("Client stream replay bookkeeping")
struct ReplayTests {
    /// A connection's outbox with no handler: what reaches it is dropped (the tests drive the
    /// stream by hand).
    private static func outbox() -> ConnectionOutbox {
        ConnectionOutbox(eventLoop: MultiThreadedEventLoopGroup.singleton.next(), orphaned: { _, _ in })
    }

    private static func stream(on outbox: ConnectionOutbox) -> H2StreamIO {
        H2StreamIO(server: false, streamID: 0, outbox: outbox, maxMessageSize: 1024, openWith: [(":method", "POST"), (":path", "/t.T/M")])
    }

    @Test func aStaleMoveNeitherMovesTheStreamNorFailsTheCall() {
        let a = Self.outbox(), b = Self.outbox(), c = Self.outbox()
        let io = Self.stream(on: a)
        #expect(io.takeWork(for: a)?.open != nil)  // sent on A
        #expect(io.rewindForReplay())  // A refused it unprocessed
        #expect(io.rehome(from: a, to: b) == .moved)
        #expect(io.rehome(from: a, to: c) == .stale)  // a second request from A
        #expect(io.takeWork(for: a) == nil)
        #expect(io.takeWork(for: b)?.open != nil)  // sent on B
        #expect(io.rehome(from: b, to: c) == .stale)  // nothing waits to be opened any more
        io.abortIfWaiting(on: a, RPCError(.unavailable, "A is gone"))
        io.abortIfWaiting(on: b, RPCError(.unavailable, "B is gone"))
        #expect(!io.inboundFinished)
        #expect(io.outbox === b)
    }

    @Test func aConnectionThatCannotOpenLeavesTheStreamWaitingToMove() throws {
        let a = Self.outbox(), b = Self.outbox()
        let io = Self.stream(on: a)
        let work = try #require(io.takeWork(for: a, canOpen: false))
        #expect(work.mustMove)
        #expect(work.open == nil)
        #expect(io.rehome(from: a, to: b) == .moved)
        #expect(io.takeWork(for: b)?.open != nil)
    }

    @Test func movesAreBoundedAndAStreamThatCannotMoveFails() {
        var from = Self.outbox()
        let io = Self.stream(on: from)
        for _ in 0..<H2StreamIO.maxMoves {
            let to = Self.outbox()
            #expect(io.rehome(from: from, to: to) == .moved)
            from = to
        }
        #expect(io.rehome(from: from, to: Self.outbox()) == .exhausted)
        io.abortIfWaiting(on: from, RPCError(.unavailable, "no connection"))
        #expect(io.inboundFinished)
        #expect(io.rehome(from: from, to: Self.outbox()) == .over)
    }

    @Test func refusalsOnTheSameConnectionHaveTheirOwnBound() {
        let a = Self.outbox()
        let io = Self.stream(on: a)
        for _ in 0..<H2StreamIO.maxRetriesInPlace {
            #expect(io.takeWork(for: a)?.open != nil)
            #expect(io.rewindForReplay())  // refused while A stays current
            #expect(io.rehome(from: a, to: a) == .moved)
        }
        #expect(io.takeWork(for: a)?.open != nil)
        #expect(io.rewindForReplay())
        #expect(io.rehome(from: a, to: a) == .exhausted)
    }

    /// The move budget is for connections that go away: refusals in place before each move spend
    /// none of it (they used to, so a few refusals and one reconnect failed the call).
    @Test func refusalsInPlaceDoNotSpendMoves() {
        var from = Self.outbox()
        let io = Self.stream(on: from)
        func refuseInPlace() {
            for _ in 0..<H2StreamIO.maxRetriesInPlace {
                #expect(io.takeWork(for: from)?.open != nil)
                #expect(io.rewindForReplay())
                #expect(io.rehome(from: from, to: from) == .moved)
            }
        }
        for _ in 0..<H2StreamIO.maxMoves {
            refuseInPlace()  // the count starts again on each connection
            let to = Self.outbox()
            #expect(io.rehome(from: from, to: to) == .moved)
            from = to
        }
        refuseInPlace()
        #expect(io.rehome(from: from, to: Self.outbox()) == .exhausted)
        #expect(io.outbox === from)
    }

    @Test func aStreamTheServerAnsweredIsNotReplayed() {
        let a = Self.outbox()
        let io = Self.stream(on: a)
        _ = io.takeWork(for: a)
        io.receiveHead([:])
        #expect(!io.rewindForReplay())
    }
}
