/// Byte counts as people read them.
public enum ByteCountText {
    /// `count` bytes in the largest binary unit that keeps a value of at least 1, one decimal (`3.0 GiB`, `512 B`).
    public static func describe(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while abs(value) >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : "\((value * 10).rounded() / 10) \(units[unit])"
    }
}
