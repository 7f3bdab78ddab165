import ZabbixProtocol

extension PreSharedKey {
    /// Reads the key from `file` (`TLSPSKFile`, `--tls-psk-file`) and pairs it with `identity`.
    public static func load(identity: String, file: String) throws(PSKError) -> PreSharedKey {
        let contents: [UInt8]
        do {
            // fgets reads at most this much of the first line; enough to tell "too long".
            contents = try LocalFiles.read(file, limit: maximumHexDigits + 3, prefixOnly: true)
        } catch {
            throw .cannotOpen(path: file, reason: error.reason)
        }
        return try PreSharedKey(identity: identity, key: parseKeyFile(contents, path: file))
    }
}
