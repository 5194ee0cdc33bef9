import Foundation
import Hummingbird
import ServiceKit

/// `/api/v1/tokens`: the organisation's API tokens (owner only).
struct TokenRoutes {
    let tokens: TokenStore

    struct CreateBody: Decodable {
        var name: String
        var role: Role
        var expires_at_us: Int64?
    }

    struct Created: Encodable {
        var token: TokenInfo
        /// The value, shown this once.
        var value: String
    }

    func register(on group: RouterGroup<GatewayContext>) {
        group.post("tokens") { request, context in
            let principal = try context.require(.administer)
            let body = try await request.json(CreateBody.self, context)
            // Control characters (NUL above all, which Postgres text refuses) are the client's mistake.
            guard (1...200).contains(body.name.count), !body.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw Problem.badRequest("token.name.invalid", "name must have 1 to 200 printable characters")
            }
            if let expiry = body.expires_at_us, expiry <= TokenStore.nowUs() {
                throw Problem.badRequest("token.expiry.past", "expires_at_us must be in the future")
            }
            let (info, value) = try await tokens.createToken(in: principal.organization, name: body.name, role: body.role,
                                                             expiresAtUs: body.expires_at_us)
            return try Response.json(Created(token: info, value: value), status: .created)
        }
        group.get("tokens") { _, context in
            let principal = try context.require(.administer)
            struct Page: Encodable { var tokens: [TokenInfo] }
            return try Response.json(Page(tokens: try await tokens.listTokens(in: principal.organization)))
        }
        group.delete("tokens/{id}") { _, context in
            let principal = try context.require(.administer)
            let id = try context.parameters.id()
            // Revoking the token in hand could lock the organisation out (it may be the last
            // owner token, and nothing else can mint one): revoke it with another token.
            guard id != principal.tokenID else {
                throw Problem(.conflict, code: "token.self_revocation", detail: "a token cannot revoke itself; use another owner token")
            }
            guard try await tokens.revokeToken(id, in: principal.organization) else {
                throw Problem.notFound("token")
            }
            return Response(status: .noContent)
        }
        group.get("organization") { _, context in
            guard let principal = context.principal else { throw Problem.unauthenticated }
            struct Body: Encodable { var id: String; var role: Role; var token_id: String }
            return try Response.json(Body(id: principal.organization.rawValue, role: principal.role, token_id: principal.tokenID))
        }
    }
}
