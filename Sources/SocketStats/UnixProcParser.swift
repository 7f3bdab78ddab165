import ByteCoding
import Posix

/// Parses /proc/net/unix (the kernel's unix_seq_show), the fallback when netlink is refused.
/// Pure: bytes in, visits out. The table has no backlogs (0: unknown). It does list the
/// connections waiting in a listener's accept queue (inode 0, CONNECTING, the listener's path),
/// which unix_diag leaves out: they count as that path's accept queue, not as sockets.
/// States come from the socket layer, mapped as `ss` maps them.
///
///     Num       RefCount Protocol Flags    Type St Inode Path
///     0000000000000000: 00000002 00000000 00010000 0001 01 23456 /run/php/php-fpm.sock
///
/// The kernel prints a path byte for byte, so a path holding a newline continues on the next
/// line: a line that does not start with a socket's "Num:" field belongs to the path above it.
public enum UnixProcParser {
    /// __SO_ACCEPTCON in Flags: a listening socket.
    static let acceptConnectionsFlag: UInt32 = 1 << 16

    /// St (SS_UNCONNECTED, SS_CONNECTING, SS_CONNECTED, SS_DISCONNECTING) as TCP state numbers,
    /// as `ss` reads this table: UNCONN, SYN-SENT, ESTAB, CLOSING.
    static func state(fromSocketState st: UInt32) -> UInt8 {
        switch st {
        case 1: TCPState.close.rawValue
        case 2: TCPState.synSent.rawValue
        case 3: TCPState.established.rawValue
        case 4: TCPState.closing.rawValue
        default: 0
        }
    }

    /// One line's socket; `waitsForAccept`: a connection in a listener's queue, not yet a socket.
    struct Line {
        var record: UnixSocketRecord
        var waitsForAccept: Bool
    }

    public static func parse(_ table: UnsafeRawBufferPointer, into tally: inout UnixTally) throws(ProcNetParseError) {
        var pending: Line? = nil
        var lineNumber = 0
        var start = 0
        while start < table.count {
            let newline = table[start...].firstIndex(of: UInt8(ascii: "\n")) ?? table.count
            let line = UnsafeRawBufferPointer(rebasing: table[start..<newline])
            start = newline + 1
            lineNumber += 1
            if lineNumber == 1 {
                var cursor = FieldCursor(line)
                guard cursor.next().elementsEqual("Num".utf8), cursor.next().elementsEqual("RefCount".utf8) else {
                    throw ProcNetParseError(line: 1, reason: "not /proc/net/unix: the header must start with \"Num RefCount\"")
                }
                continue
            }
            if let socket = try socketLine(line, number: lineNumber) {
                if let previous = pending { visit(previous, into: &tally) }
                pending = socket
            } else if var continued = pending {
                // The rest of a path that holds a newline.
                guard continued.record.name.append(UInt8(ascii: "\n")), line.allSatisfy({ continued.record.name.append($0) }) else {
                    throw ProcNetParseError(line: lineNumber, reason: "path longer than \(UnixName.capacity) bytes")
                }
                pending = continued
            } else if !line.isEmpty {
                throw ProcNetParseError(line: lineNumber, reason: "expected a socket line starting with \"Num:\", got \"\(excerpt(line))\"")
            }
        }
        if lineNumber == 0 {
            throw ProcNetParseError(line: 0, reason: "empty file: expected the header line \"Num RefCount Protocol ...\"")
        }
        if let last = pending { visit(last, into: &tally) }
    }

    @inline(__always)
    private static func visit(_ line: Line, into tally: inout UnixTally) {
        if line.waitsForAccept {
            tally.visitWaitingConnection(to: line.record.name)
        } else {
            tally.visit(line.record)
        }
    }

    /// A socket line, or nil when the line does not start with a hex "Num:" field.
    @inline(__always)
    static func socketLine(_ line: UnsafeRawBufferPointer, number: Int) throws(ProcNetParseError) -> Line? {
        var cursor = FieldCursor(line)
        let slot = cursor.next()
        guard slot.count >= 2, slot.last == UInt8(ascii: ":"), slot.dropLast().allSatisfy({ hexDigitValue($0) != nil }) else {
            return nil
        }
        _ = cursor.next()  // RefCount
        _ = cursor.next()  // Protocol
        guard let flags = ProcNetParser.hexValue(cursor.next(), maxDigits: 8),
              let type = ProcNetParser.hexValue(cursor.next(), maxDigits: 4),
              let st = ProcNetParser.hexValue(cursor.next(), maxDigits: 2)
        else {
            throw ProcNetParseError(line: number, reason: "expected Flags, Type and St as hex numbers")
        }
        let inode = cursor.next()
        guard !inode.isEmpty, inode.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw ProcNetParseError(line: number, reason: "expected the Inode as a decimal number")
        }
        // The path is the rest of the line after the one space that follows the inode.
        let pathStart = min(inode.endIndex + 1, line.count)
        guard let name = UnixName(line[pathStart...]) else {
            throw ProcNetParseError(line: number, reason: "path longer than \(UnixName.capacity) bytes")
        }
        let state = flags & acceptConnectionsFlag != 0 ? TCPState.listen.rawValue : Self.state(fromSocketState: st)
        let record = UnixSocketRecord(type: UInt8(truncatingIfNeeded: type), state: state, name: name)
        let waitsForAccept = inode.elementsEqual("0".utf8) && state == TCPState.synSent.rawValue && !name.isEmpty
        return Line(record: record, waitsForAccept: waitsForAccept)
    }
}
