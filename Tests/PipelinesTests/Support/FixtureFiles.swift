import NunchakuCore
import SafeTensors

/// The committed fixtures of this test target (`Tests/PipelinesTests/Fixtures`).
enum FixtureFiles {
    /// The path of `Fixtures/<relativePath>`.
    static func path(_ relativePath: String) -> String {
        let testsFolder = String(#filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(2)
            .joined(separator: "/"))
        return "\(testsFolder)/Fixtures/\(relativePath)"
    }

    /// The parsed JSON of `Fixtures/<relativePath>`.
    static func json(_ relativePath: String) throws -> JSONValue {
        try JSONValue.parse(try FileContents.read(path(relativePath)))
    }
}

extension JSONValue {
    /// The integers of an array value, or nil when it is not an array of integers.
    var intArray: [Int]? {
        guard let elements = arrayElements else { return nil }
        let values = elements.compactMap(\.intValue)
        return values.count == elements.count ? values : nil
    }
}
