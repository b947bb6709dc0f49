// The msgpack codec of the NPC dialogue protocol: the subset the protocol uses (nil, bool, integers,
// 64-bit floats, str, bin, array, map with string keys), with the smallest encoding for every value so that
// re-encoding a decoded message gives the same bytes. Plain C# 7.2, no UnityEngine.
using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace NpcDialogue
{
    /// <summary>Thrown when bytes are not valid msgpack, or a value cannot be written as protocol msgpack.</summary>
    public sealed class MsgPackException : Exception
    {
        /// <summary>Creates the exception with a message saying what is wrong.</summary>
        public MsgPackException(string message) : base(message) { }
    }

    /// <summary>
    /// Encodes and decodes msgpack values. Decoded types: <c>null</c>, <c>bool</c>, <c>long</c> (<c>ulong</c> above
    /// <c>long.MaxValue</c>), <c>double</c>, <c>string</c>, <c>byte[]</c>, <c>List&lt;object&gt;</c> and
    /// <c>Dictionary&lt;string, object&gt;</c> (keys in wire order). Floats are always written as float 64.
    /// </summary>
    public static class MsgPack
    {
        /// <summary>Deepest nesting of arrays and maps accepted when decoding.</summary>
        public const int MaxDepth = 64;

        private static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        /// <summary>Encodes one value; throws <see cref="MsgPackException"/> for a type the protocol has no use for.</summary>
        public static byte[] Encode(object value)
        {
            using (var stream = new MemoryStream())
            {
                Write(stream, value, 0);
                return stream.ToArray();
            }
        }

        /// <summary>Decodes exactly one value that fills the whole buffer.</summary>
        public static object Decode(byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            return Decode(data, 0, data.Length);
        }

        /// <summary>Decodes exactly one value that fills <paramref name="count"/> bytes from <paramref name="offset"/>.</summary>
        public static object Decode(byte[] data, int offset, int count)
        {
            if (data == null) throw new ArgumentNullException("data");
            if (offset < 0 || count < 0 || offset + count > data.Length) throw new ArgumentOutOfRangeException("count");
            var reader = new Reader(data, offset, offset + count);
            object value = reader.ReadValue(0);
            if (reader.Position != offset + count)
            {
                throw new MsgPackException(string.Format("{0} bytes left after the value", offset + count - reader.Position));
            }
            return value;
        }

        // ------------------------------------------------------------------------------------------ writing

        private static void Write(Stream s, object value, int depth)
        {
            if (depth > MaxDepth) throw new MsgPackException("value is nested deeper than " + MaxDepth);
            if (value == null) { s.WriteByte(0xc0); return; }
            if (value is bool) { s.WriteByte((bool)value ? (byte)0xc3 : (byte)0xc2); return; }
            if (value is string) { WriteString(s, (string)value); return; }
            if (value is byte[]) { WriteBinary(s, (byte[])value); return; }
            if (value is double) { WriteDouble(s, (double)value); return; }
            if (value is float) { WriteDouble(s, (float)value); return; }
            if (value is ulong) { WriteUnsigned(s, (ulong)value); return; }
            if (value is long || value is int || value is short || value is sbyte
                || value is uint || value is ushort || value is byte)
            {
                WriteSigned(s, Convert.ToInt64(value));
                return;
            }
            if (value is Enum) throw new MsgPackException("enums have no protocol encoding; send their string name");
            var stringMap = value as IDictionary<string, object>;
            if (stringMap != null)
            {
                WriteHeader(s, stringMap.Count, 0x80, 15, 0xde, 0xdf);
                foreach (KeyValuePair<string, object> pair in stringMap)
                {
                    if (pair.Key == null) throw new MsgPackException("map keys must not be null");
                    WriteString(s, pair.Key);
                    Write(s, pair.Value, depth + 1);
                }
                return;
            }
            var map = value as IDictionary;
            if (map != null)
            {
                WriteHeader(s, map.Count, 0x80, 15, 0xde, 0xdf);
                foreach (DictionaryEntry entry in map)
                {
                    var key = entry.Key as string;
                    if (key == null) throw new MsgPackException("map keys must be strings, got " + entry.Key.GetType().Name);
                    WriteString(s, key);
                    Write(s, entry.Value, depth + 1);
                }
                return;
            }
            var list = value as ICollection;
            if (list != null)
            {
                WriteHeader(s, list.Count, 0x90, 15, 0xdc, 0xdd);
                foreach (object item in list) Write(s, item, depth + 1);
                return;
            }
            throw new MsgPackException("cannot encode a " + value.GetType().FullName);
        }

        private static void WriteHeader(Stream s, int count, byte fixBase, int fixMax, byte code16, byte code32)
        {
            if (count <= fixMax) { s.WriteByte((byte)(fixBase | count)); }
            else if (count <= 0xffff) { s.WriteByte(code16); WriteBigEndian(s, (ulong)count, 2); }
            else { s.WriteByte(code32); WriteBigEndian(s, (ulong)count, 4); }
        }

        private static void WriteString(Stream s, string value)
        {
            byte[] bytes = StrictUtf8.GetBytes(value);
            int n = bytes.Length;
            if (n <= 31) s.WriteByte((byte)(0xa0 | n));
            else if (n <= 0xff) { s.WriteByte(0xd9); s.WriteByte((byte)n); }
            else if (n <= 0xffff) { s.WriteByte(0xda); WriteBigEndian(s, (ulong)n, 2); }
            else { s.WriteByte(0xdb); WriteBigEndian(s, (ulong)n, 4); }
            s.Write(bytes, 0, n);
        }

        private static void WriteBinary(Stream s, byte[] bytes)
        {
            int n = bytes.Length;
            if (n <= 0xff) { s.WriteByte(0xc4); s.WriteByte((byte)n); }
            else if (n <= 0xffff) { s.WriteByte(0xc5); WriteBigEndian(s, (ulong)n, 2); }
            else { s.WriteByte(0xc6); WriteBigEndian(s, (ulong)n, 4); }
            s.Write(bytes, 0, n);
        }

        private static void WriteDouble(Stream s, double value)
        {
            s.WriteByte(0xcb);
            WriteBigEndian(s, (ulong)BitConverter.DoubleToInt64Bits(value), 8);
        }

        private static void WriteUnsigned(Stream s, ulong value)
        {
            if (value <= 0x7f) s.WriteByte((byte)value);
            else if (value <= 0xff) { s.WriteByte(0xcc); s.WriteByte((byte)value); }
            else if (value <= 0xffff) { s.WriteByte(0xcd); WriteBigEndian(s, value, 2); }
            else if (value <= 0xffffffffUL) { s.WriteByte(0xce); WriteBigEndian(s, value, 4); }
            else { s.WriteByte(0xcf); WriteBigEndian(s, value, 8); }
        }

        private static void WriteSigned(Stream s, long value)
        {
            if (value >= 0) { WriteUnsigned(s, (ulong)value); return; }
            if (value >= -32) s.WriteByte((byte)(sbyte)value);
            else if (value >= sbyte.MinValue) { s.WriteByte(0xd0); s.WriteByte((byte)(sbyte)value); }
            else if (value >= short.MinValue) { s.WriteByte(0xd1); WriteBigEndian(s, (ulong)value, 2); }
            else if (value >= int.MinValue) { s.WriteByte(0xd2); WriteBigEndian(s, (ulong)value, 4); }
            else { s.WriteByte(0xd3); WriteBigEndian(s, (ulong)value, 8); }
        }

        private static void WriteBigEndian(Stream s, ulong value, int byteCount)
        {
            for (int shift = (byteCount - 1) * 8; shift >= 0; shift -= 8) s.WriteByte((byte)(value >> shift));
        }

        // ------------------------------------------------------------------------------------------ reading

        private sealed class Reader
        {
            private readonly byte[] _data;
            private readonly int _end;
            public int Position;

            public Reader(byte[] data, int start, int end)
            {
                _data = data;
                Position = start;
                _end = end;
            }

            public object ReadValue(int depth)
            {
                if (depth > MaxDepth) throw new MsgPackException("value is nested deeper than " + MaxDepth);
                byte code = Take(1)[0];
                if (code <= 0x7f) return (long)code;
                if (code >= 0xe0) return (long)(sbyte)code;
                if (code >= 0xa0 && code <= 0xbf) return ReadString(code & 0x1f);
                if (code >= 0x90 && code <= 0x9f) return ReadArray(code & 0x0f, depth);
                if (code >= 0x80 && code <= 0x8f) return ReadMap(code & 0x0f, depth);
                switch (code)
                {
                    case 0xc0: return null;
                    case 0xc2: return false;
                    case 0xc3: return true;
                    case 0xc4: return ReadBinary(ReadLength(1));
                    case 0xc5: return ReadBinary(ReadLength(2));
                    case 0xc6: return ReadBinary(ReadLength(4));
                    case 0xca: return (double)BitConverter.ToSingle(ReversedIfLittle(Take(4)), 0);
                    case 0xcb: return BitConverter.Int64BitsToDouble((long)ReadBigEndian(8));
                    case 0xcc: return (long)ReadBigEndian(1);
                    case 0xcd: return (long)ReadBigEndian(2);
                    case 0xce: return (long)ReadBigEndian(4);
                    case 0xcf:
                    {
                        ulong u = ReadBigEndian(8);
                        if (u > long.MaxValue) return u;
                        return (long)u;
                    }
                    case 0xd0: return (long)(sbyte)ReadBigEndian(1);
                    case 0xd1: return (long)(short)ReadBigEndian(2);
                    case 0xd2: return (long)(int)ReadBigEndian(4);
                    case 0xd3: return (long)ReadBigEndian(8);
                    case 0xd9: return ReadString(ReadLength(1));
                    case 0xda: return ReadString(ReadLength(2));
                    case 0xdb: return ReadString(ReadLength(4));
                    case 0xdc: return ReadArray(ReadLength(2), depth);
                    case 0xdd: return ReadArray(ReadLength(4), depth);
                    case 0xde: return ReadMap(ReadLength(2), depth);
                    case 0xdf: return ReadMap(ReadLength(4), depth);
                    case 0xc1: throw new MsgPackException("0xc1 is never used in msgpack");
                    default: throw new MsgPackException(string.Format("msgpack type 0x{0:x2} (ext) is not used by the protocol", code));
                }
            }

            private int ReadLength(int byteCount)
            {
                ulong n = ReadBigEndian(byteCount);
                if (n > (ulong)(_end - Position))
                {
                    throw new MsgPackException(string.Format("length {0} runs past the end of the data", n));
                }
                return (int)n;
            }

            private string ReadString(int length)
            {
                byte[] bytes = Take(length);
                try
                {
                    return StrictUtf8.GetString(bytes);
                }
                catch (ArgumentException exc)
                {
                    throw new MsgPackException("str is not valid UTF-8: " + exc.Message);
                }
            }

            private byte[] ReadBinary(int length)
            {
                return Take(length);
            }

            private List<object> ReadArray(int count, int depth)
            {
                if (count > _end - Position) throw new MsgPackException("array count runs past the end of the data");
                var list = new List<object>(count);
                for (int i = 0; i < count; i++) list.Add(ReadValue(depth + 1));
                return list;
            }

            private Dictionary<string, object> ReadMap(int count, int depth)
            {
                if (count > (_end - Position) / 2) throw new MsgPackException("map count runs past the end of the data");
                var map = new Dictionary<string, object>(count);
                for (int i = 0; i < count; i++)
                {
                    var key = ReadValue(depth + 1) as string;
                    if (key == null) throw new MsgPackException("map keys must be strings");
                    if (map.ContainsKey(key)) throw new MsgPackException("duplicate map key '" + key + "'");
                    map.Add(key, ReadValue(depth + 1));
                }
                return map;
            }

            private ulong ReadBigEndian(int byteCount)
            {
                byte[] bytes = Take(byteCount);
                ulong value = 0;
                for (int i = 0; i < byteCount; i++) value = (value << 8) | bytes[i];
                return value;
            }

            private byte[] Take(int count)
            {
                if (count > _end - Position) throw new MsgPackException("data ends in the middle of a value");
                var bytes = new byte[count];
                Buffer.BlockCopy(_data, Position, bytes, 0, count);
                Position += count;
                return bytes;
            }

            private static byte[] ReversedIfLittle(byte[] bigEndian)
            {
                if (BitConverter.IsLittleEndian) Array.Reverse(bigEndian);
                return bigEndian;
            }
        }
    }
}
