// ZMTP 3.1 (ZeroMQ's wire protocol, NULL mechanism) as bytes: the greeting, READY, message frames and
// PING/PONG that a DEALER sends, and an incremental parser for what it receives. No sockets here; see
// ZmtpDealer. The byte sequences are pinned by engine_bridge/zmtp_vectors.json (the Python reference).
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace NpcDialogue
{
    /// <summary>Thrown when the peer breaks ZMTP, closes, or does not answer in time.</summary>
    public sealed class ZmtpException : Exception
    {
        /// <summary>Creates the exception with a message saying what happened.</summary>
        public ZmtpException(string message) : base(message) { }

        /// <summary>Creates the exception wrapping the socket or I/O error that caused it.</summary>
        public ZmtpException(string message, Exception inner) : base(message, inner) { }
    }

    /// <summary>One frame after the greeting: a command or one part of a message.</summary>
    public sealed class ZmtpFrame
    {
        /// <summary>The flags byte (more, long, command bits).</summary>
        public readonly byte Flags;

        /// <summary>The frame body.</summary>
        public readonly byte[] Body;

        /// <summary>Creates a frame.</summary>
        public ZmtpFrame(byte flags, byte[] body)
        {
            Flags = flags;
            Body = body;
        }

        /// <summary>True for a command (READY, PING, PONG, ERROR), false for a message part.</summary>
        public bool IsCommand { get { return (Flags & Zmtp.FlagCommand) != 0; } }

        /// <summary>True when more parts of the same message follow.</summary>
        public bool More { get { return (Flags & Zmtp.FlagMore) != 0; } }

        /// <summary>The command name (e.g. "PING"), or null for a message part.</summary>
        public string CommandName
        {
            get
            {
                if (!IsCommand || Body.Length == 0 || Body[0] + 1 > Body.Length) return null;
                return Encoding.ASCII.GetString(Body, 1, Body[0]);
            }
        }

        /// <summary>The command data after the name; empty for a message part.</summary>
        public byte[] CommandData
        {
            get
            {
                if (!IsCommand || Body.Length == 0 || Body[0] + 1 > Body.Length) return new byte[0];
                int start = 1 + Body[0];
                var data = new byte[Body.Length - start];
                Buffer.BlockCopy(Body, start, data, 0, data.Length);
                return data;
            }
        }
    }

    /// <summary>Builds the ZMTP 3.1 byte sequences a DEALER sends and checks what the peer sends back.</summary>
    public static class Zmtp
    {
        /// <summary>Size of the greeting in bytes.</summary>
        public const int GreetingBytes = 64;
        /// <summary>Flag bit: more frames of this message follow.</summary>
        public const byte FlagMore = 0x01;
        /// <summary>Flag bit: the size is 8 bytes (big-endian) instead of 1.</summary>
        public const byte FlagLong = 0x02;
        /// <summary>Flag bit: the frame is a command.</summary>
        public const byte FlagCommand = 0x04;
        /// <summary>Largest body that fits a short frame.</summary>
        public const int ShortFrameMax = 255;

        /// <summary>
        /// The greeting: signature, version 3.1, mechanism NULL, as-server 0, zero filler. libzmq waits for all
        /// 64 bytes before it answers, so send it in one write.
        /// </summary>
        public static byte[] Greeting()
        {
            var g = new byte[GreetingBytes];
            g[0] = 0xff;
            g[9] = 0x7f;
            g[10] = 3;
            g[11] = 1;
            byte[] mechanism = Encoding.ASCII.GetBytes("NULL");
            Buffer.BlockCopy(mechanism, 0, g, 12, mechanism.Length);
            return g;
        }

        /// <summary>Checks the peer's greeting; throws <see cref="ZmtpException"/> when it is not ZMTP 3.x NULL.</summary>
        public static void CheckGreeting(byte[] greeting)
        {
            if (greeting == null || greeting.Length != GreetingBytes) throw new ZmtpException("greeting must be 64 bytes");
            if (greeting[0] != 0xff || greeting[9] != 0x7f)
            {
                throw new ZmtpException("peer is not a ZeroMQ socket (bad greeting signature)");
            }
            if (greeting[10] < 3)
            {
                throw new ZmtpException(string.Format("peer speaks ZMTP {0}.{1}; 3.0 or newer is needed", greeting[10], greeting[11]));
            }
            string mechanism = Encoding.ASCII.GetString(greeting, 12, 20).TrimEnd('\0');
            if (mechanism != "NULL")
            {
                throw new ZmtpException("peer wants security mechanism '" + mechanism + "'; only NULL is supported");
            }
        }

        /// <summary>A command frame: name-length, name, then data.</summary>
        public static byte[] Command(string name, byte[] data)
        {
            byte[] rawName = Encoding.ASCII.GetBytes(name);
            if (rawName.Length == 0 || rawName.Length > 255) throw new ArgumentException("command name must be 1..255 characters");
            data = data ?? new byte[0];
            var body = new byte[1 + rawName.Length + data.Length];
            body[0] = (byte)rawName.Length;
            Buffer.BlockCopy(rawName, 0, body, 1, rawName.Length);
            Buffer.BlockCopy(data, 0, body, 1 + rawName.Length, data.Length);
            return Frame(FlagCommand, body);
        }

        /// <summary>READY with Socket-Type and Identity (always sent; empty lets the server pick one).</summary>
        public static byte[] Ready(string socketType, byte[] identity)
        {
            identity = identity ?? new byte[0];
            if (identity.Length > 255) throw new ArgumentException("a routing identity is at most 255 bytes");
            if (identity.Length > 0 && identity[0] == 0)
            {
                throw new ArgumentException("a routing identity must not start with a zero byte (libzmq reserves those)");
            }
            using (var metadata = new MemoryStream())
            {
                WriteProperty(metadata, "Socket-Type", Encoding.ASCII.GetBytes(socketType));
                WriteProperty(metadata, "Identity", identity);
                return Command("READY", metadata.ToArray());
            }
        }

        /// <summary>The properties of a READY command body; throws when the body is not READY.</summary>
        public static Dictionary<string, byte[]> ParseReady(byte[] body)
        {
            if (body.Length < 6 || body[0] != 5 || Encoding.ASCII.GetString(body, 1, 5) != "READY")
            {
                throw new ZmtpException("expected a READY command");
            }
            var props = new Dictionary<string, byte[]>();
            int pos = 6;
            while (pos < body.Length)
            {
                int nameLength = body[pos];
                if (pos + 1 + nameLength + 4 > body.Length) throw new ZmtpException("READY property is truncated");
                string name = Encoding.ASCII.GetString(body, pos + 1, nameLength);
                pos += 1 + nameLength;
                long valueLength = ((long)body[pos] << 24) | ((long)body[pos + 1] << 16) | ((long)body[pos + 2] << 8) | body[pos + 3];
                pos += 4;
                if (pos + valueLength > body.Length) throw new ZmtpException("READY property value is truncated");
                var value = new byte[valueLength];
                Buffer.BlockCopy(body, pos, value, 0, (int)valueLength);
                props[name] = value;
                pos += (int)valueLength;
            }
            return props;
        }

        /// <summary>One message frame: short up to 255 bytes, long above.</summary>
        public static byte[] Message(byte[] payload, bool more)
        {
            return Frame(more ? FlagMore : (byte)0, payload ?? new byte[0]);
        }

        /// <summary>PING: 2-byte TTL in tenths of a second, then up to 16 bytes of context the peer echoes.</summary>
        public static byte[] Ping(ushort ttlDeciseconds, byte[] context)
        {
            context = context ?? new byte[0];
            if (context.Length > 16) throw new ArgumentException("ping context is at most 16 bytes");
            var data = new byte[2 + context.Length];
            data[0] = (byte)(ttlDeciseconds >> 8);
            data[1] = (byte)ttlDeciseconds;
            Buffer.BlockCopy(context, 0, data, 2, context.Length);
            return Command("PING", data);
        }

        /// <summary>PONG echoing the context of the PING it answers.</summary>
        public static byte[] Pong(byte[] context)
        {
            return Command("PONG", context);
        }

        private static byte[] Frame(byte flags, byte[] body)
        {
            byte[] frame;
            int header;
            if (body.Length > ShortFrameMax)
            {
                header = 9;
                frame = new byte[header + body.Length];
                frame[0] = (byte)(flags | FlagLong);
                ulong size = (ulong)body.Length;
                for (int i = 0; i < 8; i++) frame[1 + i] = (byte)(size >> (56 - 8 * i));
            }
            else
            {
                header = 2;
                frame = new byte[header + body.Length];
                frame[0] = flags;
                frame[1] = (byte)body.Length;
            }
            Buffer.BlockCopy(body, 0, frame, header, body.Length);
            return frame;
        }

        private static void WriteProperty(Stream s, string name, byte[] value)
        {
            byte[] rawName = Encoding.ASCII.GetBytes(name);
            s.WriteByte((byte)rawName.Length);
            s.Write(rawName, 0, rawName.Length);
            uint n = (uint)value.Length;
            s.WriteByte((byte)(n >> 24));
            s.WriteByte((byte)(n >> 16));
            s.WriteByte((byte)(n >> 8));
            s.WriteByte((byte)n);
            s.Write(value, 0, value.Length);
        }
    }

    /// <summary>Incremental frame parser: feed it any slices of the TCP stream, take whole frames out.</summary>
    public sealed class ZmtpFrameReader
    {
        private readonly long _maxFrameBytes;
        private byte[] _buffer = new byte[4096];
        private int _start;
        private int _end;

        /// <summary>Creates a reader that rejects frames larger than <paramref name="maxFrameBytes"/>.</summary>
        public ZmtpFrameReader(long maxFrameBytes)
        {
            if (maxFrameBytes <= 0 || maxFrameBytes > int.MaxValue - 16) throw new ArgumentOutOfRangeException("maxFrameBytes");
            _maxFrameBytes = maxFrameBytes;
        }

        /// <summary>Bytes received but not yet taken out as frames.</summary>
        public int Buffered { get { return _end - _start; } }

        /// <summary>Appends received bytes.</summary>
        public void Feed(byte[] data, int offset, int count)
        {
            if (count == 0) return;
            if (_end + count > _buffer.Length)
            {
                int live = _end - _start;
                int size = _buffer.Length;
                while (size < live + count) size *= 2;
                var grown = size == _buffer.Length ? _buffer : new byte[size];
                Buffer.BlockCopy(_buffer, _start, grown, 0, live);
                _buffer = grown;
                _start = 0;
                _end = live;
            }
            Buffer.BlockCopy(data, offset, _buffer, _end, count);
            _end += count;
        }

        /// <summary>Takes out the next whole frame, or returns null when more bytes are needed.</summary>
        public ZmtpFrame Next()
        {
            int available = _end - _start;
            if (available < 2) return null;
            byte flags = _buffer[_start];
            if ((flags & ~(Zmtp.FlagMore | Zmtp.FlagLong | Zmtp.FlagCommand)) != 0)
            {
                throw new ZmtpException(string.Format("reserved frame flag bits set: 0x{0:x2}", flags));
            }
            ulong size;
            int header;
            if ((flags & Zmtp.FlagLong) != 0)
            {
                if (available < 9) return null;
                size = 0;
                for (int i = 1; i <= 8; i++) size = (size << 8) | _buffer[_start + i];
                header = 9;
            }
            else
            {
                size = _buffer[_start + 1];
                header = 2;
            }
            if (size > (ulong)_maxFrameBytes)
            {
                throw new ZmtpException(string.Format("frame of {0} bytes is over the {1}-byte limit", size, _maxFrameBytes));
            }
            if ((ulong)available < (ulong)header + size) return null;
            var body = new byte[(int)size];
            Buffer.BlockCopy(_buffer, _start + header, body, 0, body.Length);
            _start += header + body.Length;
            if (_start == _end)
            {
                _start = 0;
                _end = 0;
            }
            return new ZmtpFrame(flags, body);
        }
    }
}
