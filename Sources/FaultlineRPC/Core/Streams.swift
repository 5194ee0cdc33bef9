/// A type-erased asynchronous sequence of messages: what a handler reads requests from and a
/// client reads responses from. Iterating it ends normally when the peer half-closes, or throws
/// an `RPCError` when the call fails.
public struct RPCAsyncSequence<Element: Sendable>: AsyncSequence, Sendable {
    public typealias Failure = any Error
    private let base: any AsyncSequence<Element, any Error> & Sendable

    public init(wrapping base: some AsyncSequence<Element, any Error> & Sendable) {
        self.base = base
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base.makeAsyncIterator())
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        private var base: any AsyncIteratorProtocol<Element, any Error>

        init(_ base: any AsyncIteratorProtocol<Element, any Error>) {
            self.base = base
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(any Error) -> Element? {
            try await base.next(isolation: actor)
        }

        public mutating func next() async throws -> Element? {
            try await base.next(isolation: nil)
        }
    }
}

extension RPCAsyncSequence {
    /// A sequence that maps each element, e.g. raw bytes to decoded messages.
    public func map<T: Sendable>(_ transform: @escaping @Sendable (Element) throws -> T) -> RPCAsyncSequence<T> {
        RPCAsyncSequence<T>(wrapping: MappedSequence(base: self, transform: transform))
    }

    /// The one and only element; a missing or a second element is a protocol violation.
    public func singleElement(of method: MethodDescriptor) async throws -> Element {
        var iterator = makeAsyncIterator()
        guard let first = try await iterator.next() else {
            throw RPCError(.internalError, "\(method) expects exactly one message, received none")
        }
        guard try await iterator.next() == nil else {
            throw RPCError(.internalError, "\(method) expects exactly one message, received more")
        }
        return first
    }
}

private struct MappedSequence<Base: Sendable, Element: Sendable>: AsyncSequence, Sendable {
    typealias Failure = any Error
    let base: RPCAsyncSequence<Base>
    let transform: @Sendable (Base) throws -> Element

    func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator(), transform: transform) }

    struct Iterator: AsyncIteratorProtocol {
        var base: RPCAsyncSequence<Base>.AsyncIterator
        let transform: @Sendable (Base) throws -> Element

        mutating func next(isolation actor: isolated (any Actor)?) async throws(any Error) -> Element? {
            guard let value = try await base.next(isolation: actor) else { return nil }
            return try transform(value)
        }

        mutating func next() async throws -> Element? { try await next(isolation: nil) }
    }
}

/// Where a handler writes responses and a client writes requests. `write` suspends while the
/// peer's HTTP/2 flow-control window is exhausted: back-pressure instead of unbounded buffers.
public struct RPCWriter<Element: Sendable>: Sendable {
    private let sink: @Sendable (Element) async throws -> Void

    public init(_ sink: @escaping @Sendable (Element) async throws -> Void) {
        self.sink = sink
    }

    public func write(_ element: Element) async throws {
        try await sink(element)
    }

    public func write(contentsOf elements: some Sequence<Element>) async throws {
        for element in elements { try await sink(element) }
    }

    /// A writer that transforms each element before passing it on.
    public func map<T: Sendable>(_ transform: @escaping @Sendable (T) throws -> Element) -> RPCWriter<T> {
        let sink = self.sink
        return RPCWriter<T> { try await sink(try transform($0)) }
    }
}
