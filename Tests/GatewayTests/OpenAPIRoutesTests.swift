import FaultlinePostgres
import FaultlineProto
import FaultlineRPC
import Foundation
@testable import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@Suite("OpenAPI document")
struct OpenAPIRoutesTests {
    /// A gateway whose clients point nowhere: enough to build its router and answer what needs
    /// no service (a 405 is decided before any handler, authentication included).
    static func unconnectedGateway() throws -> Gateway {
        let rpc = RPCClient(host: "127.0.0.1", port: 9, logger: Logger(label: "unused"))
        let database = PostgresClient(configuration: try PostgresConfiguration(url: "postgres://unused@127.0.0.1:9/unused"))
        return Gateway(configuration: GatewayConfiguration(), tokens: TokenStore(database: database),
                       experiments: .init(rpc), runners: .init(rpc), secrets: .init(rpc), schedules: .init(rpc),
                       dependencies: [], logger: Logger(label: "unused"))
    }

    /// What schemathesis can check is what the document names: every `/api/v1` route the router
    /// serves is documented, with its method, and the document names no route that is not served.
    @Test("documents exactly the /api/v1 routes the gateway serves")
    func everyRouteDocumented() throws {
        let served = Set(try Self.unconnectedGateway().router().routes.map { "\($0.method.rawValue) \($0.path.description)" }
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

    /// The `Allow` answer comes from the router's own table: every served path, asked with any
    /// method it does not serve (one the API never serves included), is a 405 whose `Allow` lists
    /// exactly the path's methods, the API's and the console's pages alike.
    @Test("every served path answers 405 with an Allow header listing exactly its methods")
    func everyPathAllowsItsMethods() async throws {
        let gateway = try Self.unconnectedGateway()
        var served: [String: Set<String>] = [:]
        for route in gateway.router().routes {
            // A parameter stands for a value no constant segment has, so the path is that route's.
            let path = "/" + route.path.components.map { $0.description.hasPrefix("{") ? "zz-value" : $0.description }.joined(separator: "/")
            served[path, default: []].insert(route.method.rawValue)
        }
        #expect(served.count > 50, "\(served.count) paths")
        #expect(served["/api/v1/plans/preview"] == ["POST"] && served["/api/v1/plans/zz-value"] == ["GET", "PUT", "DELETE"])
        let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "TRACE"].map { HTTPRequest.Method($0)! }
        let paths = served.sorted { $0.key < $1.key }
        var quiet = Logger(label: "allow")
        quiet.logLevel = .critical
        // The router alone: the application's services (the token revocation listener) need a database.
        try await Application(router: gateway.router(), logger: quiet).test(.router) { client in
            for (path, allowed) in paths {
                for method in methods where !allowed.contains(method.rawValue) {
                    let response = try await client.execute(uri: path, method: method)
                    #expect(response.status == .methodNotAllowed, "\(method) \(path)")
                    let allow = Set((response.headers[HTTPField.Name("allow")!] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                    #expect(allow == allowed, "\(method) \(path)")
                }
            }
        }
    }
}
