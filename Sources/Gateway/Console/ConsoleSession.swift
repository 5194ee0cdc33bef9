import Crypto
import Foundation
import Hummingbird

/// Console sign-in without a session table: signing in with an API token mints a second,
/// short-lived token of the same organisation and role in the TokenStore (so only its SHA-256 is
/// stored), and that token is the HttpOnly, SameSite=Strict session cookie. Signing out revokes
/// it; revoking the pasted token (or its expiry) ends it too. The pasted token itself is never kept.
struct ConsoleSession {
    static let cookieName = "faultline_session"
    /// How long a console session lives at most.
    static let lifetime: Duration = .seconds(12 * 3600)

    let tokens: TokenStore

    enum SignInError: Error { case invalidToken, noReadAccess }

    /// The session token's value for a pasted API token.
    func signIn(with pasted: String) async throws -> String {
        let value = pasted.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let principal = try await tokens.authenticate(value) else { throw SignInError.invalidToken }
        guard principal.role.allows(.read) else { throw SignInError.noReadAccess }
        let expiry = TokenStore.nowUs() + Self.lifetime.components.seconds * 1_000_000
        // Tied to the API token it came from (or, for a pasted session, to that one's token):
        // revoking or outliving that token ends the session as well.
        let (_, session) = try await tokens.createToken(in: principal.organization, name: "console session (\(principal.sourceTokenID))",
                                                        role: principal.role, expiresAtUs: expiry, parent: principal.sourceTokenID)
        return session
    }

    func signOut(_ principal: Principal) async throws {
        _ = try await tokens.revokeToken(principal.tokenID, in: principal.organization)
    }

    /// The caller of a request carrying a live session cookie.
    func principal(of request: Request) async throws -> (Principal, csrf: String)? {
        guard let value = request.cookies[Self.cookieName]?.value,
              let principal = try await tokens.authenticate(value) else { return nil }
        return (principal, Self.csrfToken(for: value))
    }

    /// The CSRF token of a session: derived from the secret session value, which script on
    /// another site can neither read (HttpOnly) nor guess, so it needs no storage of its own.
    static func csrfToken(for session: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("faultline-console-csrf".utf8), using: SymmetricKey(data: Array(session.utf8)))
        return Data(mac).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Constant-time comparison, so a forged token learns nothing from timing.
    static func matches(_ given: String, _ expected: String) -> Bool {
        let a = Array(given.utf8), b = Array(expected.utf8)
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// The session cookie; Secure when the request came over HTTPS (through a TLS proxy).
    static func cookie(_ value: String, secure: Bool) -> Cookie {
        Cookie(name: cookieName, value: value, maxAge: Int(lifetime.components.seconds), path: "/console",
               secure: secure, httpOnly: true, sameSite: .strict)
    }

    static func expiredCookie(secure: Bool) -> Cookie {
        Cookie(name: cookieName, value: "", maxAge: 0, path: "/console", secure: secure, httpOnly: true, sameSite: .strict)
    }
}
