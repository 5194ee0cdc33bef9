import HTTPTypes
// The SPI gives Hummingbird's own route trie: the one code its router resolves paths with.
@_spi(Internal) import Hummingbird
import Synchronization

/// Which methods the route a path resolves to answers, so a known path asked with another
/// method is a 405 with `Allow` (RFC 9110 §15.5.6), not a 404.
///
/// Nothing here is a second routing table: it holds the router's own route list, resolved by
/// Hummingbird's trie exactly as the router resolves it (a constant segment before a parameter,
/// `plans/preview` before `plans/{id}`, backtracking when a branch dead-ends), so it can never
/// take a path to another route than the router does.
final class RouteTable: Sendable {
    private let trie = Mutex<RouterTrie<[HTTPRequest.Method]>?>(nil)

    /// Takes the router's routes, once every one is registered. The router is built without
    /// options, so the trie is too (a case-insensitive router would need the same option here).
    func record(_ router: Router<GatewayContext>) {
        // `routes` lists each endpoint's methods together, endpoints in the router's own trie
        // order, so entries are added in the order the router added them.
        var endpoints: [(path: RouterPath, methods: [HTTPRequest.Method])] = []
        for route in router.routes {
            if endpoints.last?.path == route.path {
                endpoints[endpoints.count - 1].methods.append(route.method)
            } else {
                endpoints.append((route.path, [route.method]))
            }
        }
        let builder = RouterPathTrieBuilder<[HTTPRequest.Method]>()
        for endpoint in endpoints { builder.addEntry(endpoint.path, value: endpoint.methods) }
        let built = builder.build()
        trie.withLock { $0 = built }
    }

    /// The methods of the route `path` resolves to; empty when it resolves to none.
    func methods(for path: String) -> [HTTPRequest.Method] {
        trie.withLock { $0?.resolve(path)?.value } ?? []
    }
}
