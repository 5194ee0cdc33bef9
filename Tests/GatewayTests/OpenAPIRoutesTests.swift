import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
@testable import Gateway
import Hummingbird
import Logging
import Testing

@Suite("OpenAPI document")
struct OpenAPIRoutesTests {
    /// What schemathesis can check is what the document names: every `/api/v1` route the router
    /// serves is documented, with its method, and the document names no route that is not served.
    @Test("documents exactly the /api/v1 routes the gateway serves")
    func everyRouteDocumented() throws {
        // Nothing here connects: the router is only built.
        let rpc = RPCClient(host: "127.0.0.1", port: 9, logger: Logger(label: "unused"))
        let database = PostgresClient(configuration: try PostgresConfiguration(url: "postgres://unused@127.0.0.1:9/unused"))
        let gateway = Gateway(configuration: GatewayConfiguration(), tokens: TokenStore(database: database),
                              experiments: .init(rpc), runners: .init(rpc), secrets: .init(rpc), schedules: .init(rpc),
                              dependencies: [], logger: Logger(label: "unused"))
        let served = Set(gateway.router().routes.map { "\($0.method.rawValue) \($0.path.description)" }
            .filter { $0.contains(" /api/v1/") })

        let document = try #require(try JSONSerialization.jsonObject(with: Data(Gateway.openAPIDocument.readableBytesView)) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var documented: Set<String> = []
        for (path, operations) in paths where path.hasPrefix("/api/v1/") {
            for method in operations.keys where ["get", "put", "post", "patch", "delete"].contains(method) {
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
        #expect(served.subtracting(documented).sorted() == [], "served but not documented")
        #expect(documented.subtracting(served).sorted() == [], "documented but not served")
    }
}
