/// Small formatters for human-readable reports.
public enum TextFormatting {
    /// `bytes` in binary units with three significant digits: `512 B`, `1.50 KiB`, `23.4 MiB`, `6.31 GiB`.
    public static func byteCount(_ bytes: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        guard bytes >= 1024 else { return "\(bytes) B" }
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let decimals = value < 10 ? 2 : value < 100 ? 1 : 0
        return "\(fixed(value, decimals: decimals)) \(units[unit])"
    }

    /// `value` with `decimals` digits after the point, rounded half away from zero.
    public static func fixed(_ value: Double, decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e15 else { return "\(value)" }
        let units = Int(scaled)
        let sign = value < 0 && units != 0 ? "-" : ""
        let whole = units / Int(scale)
        guard decimals > 0 else { return "\(sign)\(whole)" }
        let fraction = String(units % Int(scale))
        return "\(sign)\(whole).\(String(repeating: "0", count: decimals - fraction.count))\(fraction)"
    }

    /// `value` with commas between thousands: `1,234,567`.
    public static func grouped(_ value: Int) -> String {
        let digits = Array(String(value.magnitude))
        var output = value < 0 ? "-" : ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { output.append(",") }
            output.append(digit)
        }
        return output
    }

    /// A shape as `[3072, 128]` (`[]` for a scalar).
    public static func shape(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }

    /// `text` on one line (line breaks and tabs become spaces) and at most `limit` characters, with the
    /// full length noted when cut.
    public static func singleLine(_ text: String, limit: Int?) -> String {
        let flat = String(text.map { $0.isNewline || $0 == "\t" ? " " : $0 })
        guard let limit, flat.count > limit else { return flat }
        return "\(flat.prefix(limit))… (\(grouped(flat.count)) characters)"
    }

    /// Rows laid out in columns separated by two spaces; `rightAligned` columns are padded on the left.
    public static func table(_ rows: [[String]], rightAligned: Set<Int> = [], indent: Int = 0) -> [String] {
        let columnCount = rows.map(\.count).max() ?? 0
        let widths = (0..<columnCount).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        let margin = String(repeating: " ", count: indent)
        return rows.map { row in
            let cells = row.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                if rightAligned.contains(column) { return padding + cell }
                return column == row.count - 1 ? cell : cell + padding
            }
            return margin + cells.joined(separator: "  ")
        }
    }
}
