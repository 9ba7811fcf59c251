#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few libm functions the quantizer needs, behind one import so other files stay free of C modules.
enum ElementaryFunctions {
    static func naturalLogarithm(_ x: Double) -> Double { log(x) }
    static func sine(_ x: Double) -> Double { sin(x) }
    static func cosine(_ x: Double) -> Double { cos(x) }
    static func power(_ x: Double, _ y: Double) -> Double { pow(x, y) }
}
