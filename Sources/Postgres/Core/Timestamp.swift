import Foundation

/// Postgres' ISO text form of `timestamptz` (`2024-05-06 07:08:09.123456+00`), written and read
/// by hand: Foundation's formatters are far too slow for the batch path and depend on locale.
/// Connections set `TimeZone = 'UTC'` and `DateStyle = 'ISO, YMD'`, but any offset is accepted.
enum Timestamp {
    static func write(_ date: Date, into out: inout [UInt8]) {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        var days = micros / 86_400_000_000
        var rest = micros % 86_400_000_000
        if rest < 0 { rest += 86_400_000_000; days -= 1 }
        let (year, month, day) = civil(fromDays: days)
        let seconds = rest / 1_000_000, fraction = rest % 1_000_000
        if year < 1 {  // no year 0: Postgres writes 1 BC for astronomical year 0
            writeDigits(Int64(1 - year), width: 4, into: &out)
        } else {
            writeDigits(year, width: 4, into: &out)
        }
        out.append(UInt8(ascii: "-")); writeDigits(month, width: 2, into: &out)
        out.append(UInt8(ascii: "-")); writeDigits(day, width: 2, into: &out)
        out.append(UInt8(ascii: " ")); writeDigits(seconds / 3600, width: 2, into: &out)
        out.append(UInt8(ascii: ":")); writeDigits(seconds / 60 % 60, width: 2, into: &out)
        out.append(UInt8(ascii: ":")); writeDigits(seconds % 60, width: 2, into: &out)
        if fraction != 0 { out.append(UInt8(ascii: ".")); writeDigits(fraction, width: 6, into: &out) }
        out.append(contentsOf: "+00".utf8)
        if year < 1 { out.append(contentsOf: " BC".utf8) }
    }

    /// Parses `YYYY-MM-DD HH:MM:SS[.f{1,6}][+-HH[:MM[:SS]]][ BC]`; nil for anything else
    /// (including `infinity`, which has no `Date`).
    static func parse<C: Collection<UInt8>>(_ text: C) -> Date? where C.Index == Int {
        var p = Parser(bytes: text, index: text.startIndex)
        guard let year = p.number(minDigits: 4, maxDigits: 7), p.eat("-"),
              let month = p.number(minDigits: 2, maxDigits: 2), p.eat("-"),
              let day = p.number(minDigits: 2, maxDigits: 2),
              p.eat(" ") || p.eat("T"),
              let hour = p.number(minDigits: 2, maxDigits: 2), p.eat(":"),
              let minute = p.number(minDigits: 2, maxDigits: 2), p.eat(":"),
              let second = p.number(minDigits: 2, maxDigits: 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var micros: Int64 = 0
        if p.eat(".") {
            var digits = 0
            while let d = p.digit() {
                if digits < 6 { micros = micros * 10 + d }
                digits += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 6) { micros *= 10 }
        }
        var offset: Int64 = 0
        if let sign = p.peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            p.index += 1
            guard let h = p.number(minDigits: 2, maxDigits: 2) else { return nil }
            var total = h * 3600
            if p.eat(":") {
                guard let m = p.number(minDigits: 2, maxDigits: 2) else { return nil }
                total += m * 60
                if p.eat(":") {
                    guard let s = p.number(minDigits: 2, maxDigits: 2) else { return nil }
                    total += s
                }
            }
            offset = sign == UInt8(ascii: "+") ? total : -total
        }
        var astronomicalYear = year
        if p.eat(" ") {
            guard p.eat("B"), p.eat("C") else { return nil }
            astronomicalYear = 1 - year
        }
        guard p.index == text.endIndex else { return nil }
        let days = daysFromCivil(year: astronomicalYear, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
    }

    // Howard Hinnant's days-from-civil algorithms (proleptic Gregorian, day 0 = 1970-01-01).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func writeDigits(_ value: Int64, width: Int, into out: inout [UInt8]) {
        var count = 1, v = value
        while v >= 10 { v /= 10; count += 1 }
        let start = out.count, length = max(width, count)
        out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: length))
        var i = start + length - 1
        v = value
        repeat {
            out[i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
            i -= 1
        } while v > 0
    }

    private struct Parser<C: Collection<UInt8>> where C.Index == Int {
        let bytes: C
        var index: Int
        func peek() -> UInt8? { index < bytes.endIndex ? bytes[index] : nil }
        mutating func eat(_ c: Unicode.Scalar) -> Bool {
            guard peek() == UInt8(ascii: c) else { return false }
            index += 1
            return true
        }
        mutating func digit() -> Int64? {
            guard let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            index += 1
            return Int64(c - UInt8(ascii: "0"))
        }
        mutating func number(minDigits: Int, maxDigits: Int) -> Int64? {
            var value: Int64 = 0, count = 0
            while count < maxDigits, let d = digit() { value = value * 10 + d; count += 1 }
            return count >= minDigits ? value : nil
        }
    }
}
