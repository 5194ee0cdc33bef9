import FaultlineProto

/// The messages the round-trip and interop tests share. `interop.py` builds the same values with
/// Python's `protobuf`; change both together.
enum Samples {
    typealias Kinds = TestingV1.FieldKinds
    typealias Point = TestingV1.FieldKinds.Point

    static let threeMiB: [UInt8] = (0..<(3 << 20)).map { UInt8($0 % 251) }
    static let unicode = "héllo wörld 🌍 日本語 \u{7F} \u{10FFFF}"

    /// Every field set, no map key or value zero (see `zeros`), so both encoders must agree on
    /// every byte.
    static var full: Kinds {
        var m = Kinds()
        m.fDouble = -2.5e300
        m.fFloat = 3.5
        m.fInt32 = -42
        m.fInt64 = Int64.min
        m.fUint32 = UInt32.max
        m.fUint64 = UInt64.max
        m.fSint32 = Int32.min
        m.fSint64 = -1
        m.fFixed32 = 0xDEAD_BEEF
        m.fFixed64 = 0x0123_4567_89AB_CDEF
        m.fSfixed32 = -7
        m.fSfixed64 = Int64.max
        m.fBool = true
        m.fString = unicode
        m.fBytes = [0, 1, 2, 0xFF, 0]
        m.colour = .ultraviolet
        m.shape = .square
        m.point = Point(x: -1, y: 2, label: "origin")
        m.rInt32 = [0, -1, 1, Int32.max, Int32.min]
        m.rInt64 = [Int64.min, 0, Int64.max]
        m.rUint64 = [0, UInt64.max]
        m.rDouble = [0.5, -0.25, 1e-300]
        m.rBool = [true, false, true]
        m.rString = ["", "a", unicode]
        m.rBytes = [[], [0], [1, 2, 3]]
        m.rColour = [.red, .unrecognized(999), .unspecified, .green]
        m.rPoint = [Point(), Point(x: 5, y: -5, label: "p")]
        m.rSint32 = [-3, 3]
        m.rFloat = [1.5, -0.125]
        m.mString = ["a": "alpha", "b": "beta", "ü": "ümlaut"]
        m.mPoint = [-5: Point(x: 1, y: 1, label: "minus five"), 7: Point(x: 7, y: 0, label: "")]
        m.mBytes = ["k": [9, 8, 7], "z": [0]]
        m.mColour = [1: .red, -2: .unrecognized(12345)]
        m.mBool = [true: 1]
        m.mUint32 = [2_000_000_000: -1.5]
        m.choice = .cPoint(Point(x: 3, y: 4, label: "five"))
        m.other = .oRatio(0.125)
        return m
    }

    /// Zero map keys and values: protobuf-c leaves zero fields of a map entry off the wire while
    /// Python's protobuf writes them. And several uint32 keys: we sort map keys ascending (as C++
    /// protobuf does), Python's upb sorts unsigned keys descending. Both are valid encodings, so
    /// these are compared by value only.
    static var zeros: Kinds {
        var m = Kinds()
        m.mString = ["": ""]
        m.mPoint = [0: Point()]
        m.mBytes = ["": []]
        m.mColour = [0: .unspecified]
        m.mBool = [false: 0]
        m.mUint32 = [0: 0, UInt32.max: 1, 1: 2]
        m.choice = .cNumber(0)
        m.other = .oPoint(Point())
        return m
    }

    /// Oneof members at their zero value are still present on the wire.
    static var emptyBlob: Kinds {
        var m = Kinds()
        m.choice = .cBlob([])
        return m
    }

    static var falseFlag: Kinds {
        var m = Kinds()
        m.choice = .cFlag(false)
        m.other = .oRatio(0)
        return m
    }

    static var big: Kinds {
        var m = Kinds()
        m.fBytes = threeMiB
        m.rBytes = [threeMiB]
        return m
    }

    static let all: [(name: String, message: Kinds, byteExact: Bool)] = [
        ("empty", Kinds(), true),
        ("full", full, true),
        ("zeros", zeros, false),
        ("emptyBlob", emptyBlob, true),
        ("falseFlag", falseFlag, true),
        ("big", big, true),
    ]
}
