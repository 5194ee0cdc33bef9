// Every nghttp2 call lives in this file: Debian 12 ships nghttp2 1.52, which predates the 1.60 API
// (`nghttp2_ssize`, `mem_recv2`), so the `ssize_t`-era calls are kept in one place.
internal import CNGHTTP2
import NIOCore

/// An nghttp2 failure: a library error code, mapped to text in one place.
struct H2Error: Error, CustomStringConvertible {
    let code: Int32
    init(_ code: Int32) { self.code = code }
    var description: String { "HTTP/2: " + String(cString: nghttp2_strerror(code)) }
}

/// HTTP/2 error codes used in RST_STREAM and GOAWAY.
enum H2ErrorCode {
    static let noError: UInt32 = 0x0
    static let protocolError: UInt32 = 0x1
    static let internalError: UInt32 = 0x2
    static let refusedStream: UInt32 = 0x7
    static let cancel: UInt32 = 0x8
    static let enhanceYourCalm: UInt32 = 0xB
}

/// What happened while nghttp2 parsed received bytes. Recorded by the callbacks, handled after
/// `receive` returns, so no service code runs inside nghttp2.
enum H2Event {
    /// A complete header block. `initial` is the request (server) or response (client) block;
    /// otherwise it is trailers.
    case headers(stream: Int32, fields: [HeaderField], initial: Bool, endStream: Bool)
    case data(stream: Int32, ByteBuffer, endStream: Bool)
    case streamClosed(stream: Int32, errorCode: UInt32)
    case pingAck
    /// The peer's SETTINGS (not an acknowledgement) were applied.
    case remoteSettings
    case goAway(lastStreamID: Int32, errorCode: UInt32)
}

/// Where a stream's outgoing body comes from: pulled by nghttp2 as the flow-control window allows.
protocol H2BodySource: AnyObject {
    /// Copies up to `into.count` bytes. Returns the count, and whether the body ends here, with
    /// trailers to send (server) or END_STREAM on the last DATA frame (client, `trailers == nil`).
    /// `nil` means nothing to send yet: nghttp2 defers the stream until `resumeData`.
    func readBody(into buffer: UnsafeMutableRawBufferPointer) -> (count: Int, end: Bool, trailers: [HeaderField]?)?
}

struct H2Settings {
    var maxConcurrentStreams: UInt32
    var initialWindowSize: UInt32
    var connectionWindowSize: Int32
    var maxHeaderListSize: UInt32
    var maxFrameSize: UInt32 = 16_384
}

/// The sole owner of one `nghttp2_session`. Does no I/O: bytes go in with `receive`, frames come
/// out with `drain`. Confined to one event loop.
final class H2Connection {
    private var raw: OpaquePointer!
    fileprivate var events: [H2Event] = []
    fileprivate var bodies: [Int32: any H2BodySource] = [:]
    fileprivate let isServer: Bool
    fileprivate let maxHeaderListSize: Int
    // The header block being received; HTTP/2 never interleaves two blocks.
    fileprivate var blockStream: Int32 = 0
    fileprivate var blockFields: [HeaderField] = []
    fileprivate var blockSize = 0
    fileprivate var blockRejected = false

    init(server: Bool, settings: H2Settings) throws(H2Error) {
        isServer = server
        maxHeaderListSize = Int(settings.maxHeaderListSize)
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0 else { throw H2Error(NGHTTP2_ERR_NOMEM.rawValue) }
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0 else { throw H2Error(NGHTTP2_ERR_NOMEM.rawValue) }
        defer { nghttp2_option_del(option) }
        // Inbound flow control follows what handlers consume (`consume`), not what arrived.
        nghttp2_option_set_no_auto_window_update(option, 1)
        if !server {
            // Until the server's SETTINGS arrive, assume gRPC's customary limit.
            nghttp2_option_set_peer_max_concurrent_streams(option, 100)
        }

        let me = Unmanaged.passUnretained(self).toOpaque()
        let rc = server
            ? nghttp2_session_server_new2(&raw, callbacks, me, option)
            : nghttp2_session_client_new2(&raw, callbacks, me, option)
        guard rc == 0 else { throw H2Error(rc) }

        var entries: [nghttp2_settings_entry] = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.initialWindowSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: settings.maxHeaderListSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: settings.maxFrameSize),
        ]
        if server {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maxConcurrentStreams))
        } else {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        var rv = nghttp2_submit_settings(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        guard rv == 0 else { throw H2Error(rv) }
        rv = nghttp2_session_set_local_window_size(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, settings.connectionWindowSize)
        guard rv == 0 else { throw H2Error(rv) }
    }

    deinit { nghttp2_session_del(raw) }

    /// Feeds received bytes; the returned events are valid until the next call.
    func receive(_ buffer: ByteBuffer) throws(H2Error) -> [H2Event] {
        let rv = buffer.withUnsafeReadableBytes {
            nghttp2_session_mem_recv(raw, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), $0.count)
        }
        guard rv >= 0 else { throw H2Error(Int32(rv)) }
        return takeEvents()
    }

    /// Events recorded since the last call: sending can close streams too (after RST_STREAM or
    /// END_STREAM goes out), so `drain` leaves events behind as well.
    func takeEvents() -> [H2Event] {
        guard !events.isEmpty else { return [] }
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    /// Serialises every frame nghttp2 has ready into `out`.
    func drain(into out: inout ByteBuffer) throws(H2Error) {
        while true {
            var pointer: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(raw, &pointer)  // valid until the next call
            if n == 0 { return }
            guard n > 0, let pointer else { throw H2Error(Int32(n)) }
            out.writeBytes(UnsafeRawBufferPointer(start: pointer, count: n))
        }
    }

    /// False once the session is finished both ways (e.g. after GOAWAY was sent and acknowledged).
    var isActive: Bool { nghttp2_session_want_read(raw) != 0 || nghttp2_session_want_write(raw) != 0 }
    var wantsWrite: Bool { nghttp2_session_want_write(raw) != 0 }

    // MARK: submitting

    /// Sends response headers. With a `body` the stream stays open for DATA and trailers; without,
    /// the headers end the stream (Trailers-Only, or a plain HTTP error response).
    func submitResponse(stream: Int32, headers: [HeaderField], body: (any H2BodySource)?) -> Bool {
        let rv = withNVs(headers) { nvs, count -> Int32 in
            if let body {
                bodies[stream] = body
                var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readBody)
                return nghttp2_submit_response(raw, stream, nvs, count, &provider)
            }
            return nghttp2_submit_response(raw, stream, nvs, count, nil)
        }
        if rv != 0 { bodies[stream] = nil }
        return rv == 0
    }

    /// Opens a stream; returns its id, or nil when no stream can be opened (e.g. after GOAWAY).
    func submitRequest(headers: [HeaderField], body: any H2BodySource) -> Int32? {
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readBody)
        let id = withNVs(headers) { nvs, count in nghttp2_submit_request(raw, nil, nvs, count, &provider, nil) }
        guard id > 0 else { return nil }
        bodies[id] = body
        return id
    }

    /// Tells nghttp2 that a deferred body has more to send.
    func resumeData(stream: Int32) {
        _ = nghttp2_session_resume_data(raw, stream)
    }

    func resetStream(_ stream: Int32, errorCode: UInt32) {
        _ = nghttp2_submit_rst_stream(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, errorCode)
    }

    /// Acknowledges received DATA at connection level (re-opens the connection window).
    func consumeConnection(_ bytes: Int) {
        if bytes > 0 { _ = nghttp2_session_consume_connection(raw, bytes) }
    }

    /// Acknowledges received DATA at stream level once the handler took it.
    func consumeStream(_ stream: Int32, _ bytes: Int) {
        if bytes > 0 { _ = nghttp2_session_consume_stream(raw, stream, bytes) }
    }

    func submitPing() {
        _ = nghttp2_submit_ping(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    /// GOAWAY naming the last stream that will be processed; later streams are refused.
    func submitGoAway(errorCode: UInt32 = H2ErrorCode.noError, lastStreamID: Int32? = nil) {
        let last = lastStreamID ?? nghttp2_session_get_last_proc_stream_id(raw)
        _ = nghttp2_submit_goaway(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, nil, 0)
    }

    /// Server: GOAWAY with the maximum stream id, announcing a shutdown without refusing
    /// streams already on their way.
    func submitShutdownNotice() {
        _ = nghttp2_submit_shutdown_notice(raw)
    }

    fileprivate func submitTrailer(stream: Int32, _ fields: [HeaderField]) -> Int32 {
        withNVs(fields) { nvs, count in nghttp2_submit_trailer(raw, stream, nvs, count) }
    }

    fileprivate func record(_ event: H2Event) { events.append(event) }
}

@available(*, unavailable) extension H2Connection: Sendable {}

/// Calls `body` with an `nghttp2_nv` array over one contiguous copy of the fields' bytes.
private func withNVs<R>(_ fields: [HeaderField], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
    var storage: [UInt8] = []
    storage.reserveCapacity(fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
    for field in fields {
        storage.append(contentsOf: field.name.utf8)
        storage.append(contentsOf: field.value.utf8)
    }
    return storage.withUnsafeMutableBufferPointer { bytes in
        var offset = 0
        var nvs: [nghttp2_nv] = []
        nvs.reserveCapacity(fields.count)
        let base = bytes.baseAddress ?? UnsafeMutablePointer<UInt8>(bitPattern: 1)!
        for field in fields {
            let nameLength = field.name.utf8.count, valueLength = field.value.utf8.count
            nvs.append(nghttp2_nv(
                name: base + offset, value: base + offset + nameLength,
                namelen: nameLength, valuelen: valueLength, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
            offset += nameLength + valueLength
        }
        return nvs.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
    }
}

// MARK: callbacks (file scope, guarding every pointer)

@inline(__always)
private func connection(_ user: UnsafeMutableRawPointer?) -> H2Connection? {
    guard let user else { return nil }
    return Unmanaged<H2Connection>.fromOpaque(user).takeUnretainedValue()
}

private func onBeginHeaders(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?) -> Int32 {
    guard let h2 = connection(user), let frame else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
    h2.blockStream = frame.pointee.hd.stream_id
    h2.blockFields.removeAll(keepingCapacity: true)
    h2.blockSize = 0
    h2.blockRejected = false
    return 0
}

private func onHeader(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
    _ name: UnsafePointer<UInt8>?, _ nameLength: Int, _ value: UnsafePointer<UInt8>?, _ valueLength: Int,
    _ flags: UInt8, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let h2 = connection(user), let frame, let name else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
    guard frame.pointee.hd.stream_id == h2.blockStream, !h2.blockRejected else { return 0 }
    // RFC 9113 counts each field as name + value + 32 octets.
    h2.blockSize += nameLength + valueLength + 32
    guard h2.blockSize <= h2.maxHeaderListSize else {
        h2.blockRejected = true
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue  // resets this stream only
    }
    let nameString = String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self)
    let valueString = value.map { String(decoding: UnsafeBufferPointer(start: $0, count: valueLength), as: UTF8.self) } ?? ""
    h2.blockFields.append((nameString, valueString))
    return 0
}

private func onFrameRecv(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?) -> Int32 {
    guard let h2 = connection(user), let frame else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
    let header = frame.pointee.hd
    let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
    switch UInt32(header.type) {
    case NGHTTP2_HEADERS.rawValue:
        guard header.stream_id == h2.blockStream, !h2.blockRejected else { return 0 }
        let category = frame.pointee.headers.cat
        let initial = category == NGHTTP2_HCAT_REQUEST || category == NGHTTP2_HCAT_RESPONSE
        if category == NGHTTP2_HCAT_PUSH_RESPONSE { return 0 }
        h2.record(.headers(stream: header.stream_id, fields: h2.blockFields, initial: initial, endStream: endStream))
        h2.blockFields.removeAll(keepingCapacity: true)
    case NGHTTP2_DATA.rawValue:
        if endStream { h2.record(.data(stream: header.stream_id, ByteBuffer(), endStream: true)) }
    case NGHTTP2_SETTINGS.rawValue:
        if header.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 { h2.record(.remoteSettings) }
    case NGHTTP2_PING.rawValue:
        if header.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 { h2.record(.pingAck) }
    case NGHTTP2_GOAWAY.rawValue:
        h2.record(.goAway(lastStreamID: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code))
    default:
        break
    }
    return 0
}

private func onDataChunk(
    _ session: OpaquePointer?, _ flags: UInt8, _ stream: Int32, _ data: UnsafePointer<UInt8>?, _ length: Int,
    _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let h2 = connection(user), let data else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
    h2.record(.data(stream: stream, ByteBuffer(bytes: UnsafeRawBufferPointer(start: data, count: length)), endStream: false))
    return 0
}

private func onStreamClose(_ session: OpaquePointer?, _ stream: Int32, _ errorCode: UInt32, _ user: UnsafeMutableRawPointer?) -> Int32 {
    guard let h2 = connection(user) else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
    h2.bodies[stream] = nil
    h2.record(.streamClosed(stream: stream, errorCode: errorCode))
    return 0
}

private func readBody(
    _ session: OpaquePointer?, _ stream: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ length: Int,
    _ flags: UnsafeMutablePointer<UInt32>?, _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ user: UnsafeMutableRawPointer?
) -> Int {
    guard let h2 = connection(user), let buffer, let flags, let body = h2.bodies[stream] else {
        return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    }
    guard let result = body.readBody(into: UnsafeMutableRawBufferPointer(start: buffer, count: length)) else {
        return Int(NGHTTP2_ERR_DEFERRED.rawValue)
    }
    if result.end {
        flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        if let trailers = result.trailers {
            flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            guard h2.submitTrailer(stream: stream, trailers) == 0 else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        }
    }
    return result.count
}
