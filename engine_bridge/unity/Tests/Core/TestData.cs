// Helpers for the core tests: where shared test data lives (environment variables set by the project's test
// harness), hex, deep comparison of decoded msgpack values, and a small JSON reader for the fixture twins
// and the msgpack-test-suite (NUnit tests must not depend on a JSON library).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using NUnit.Framework;

namespace NpcDialogue.Tests
{
    internal static class TestData
    {
        /// <summary>A path from an environment variable; the test is ignored when it is not set.</summary>
        public static string PathFrom(string variable)
        {
            string value = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrEmpty(value)) Assert.Ignore(variable + " is not set (the project's pytest harness sets it)");
            return value;
        }

        public static byte[] Hex(string hex)
        {
            string clean = hex.Replace("-", "").Replace(" ", "");
            var bytes = new byte[clean.Length / 2];
            for (int i = 0; i < bytes.Length; i++) bytes[i] = byte.Parse(clean.Substring(2 * i, 2), NumberStyles.HexNumber);
            return bytes;
        }

        public static string ToHex(byte[] bytes)
        {
            var sb = new StringBuilder(bytes.Length * 2);
            foreach (byte b in bytes) sb.Append(b.ToString("x2"));
            return sb.ToString();
        }

        /// <summary>Null when equal, else a path and reason. Integers and floats must match in kind too.</summary>
        public static string Difference(object expected, object actual, string path)
        {
            if (expected == null || actual == null)
            {
                return expected == actual ? null : path + ": expected " + Show(expected) + ", got " + Show(actual);
            }
            if (expected.GetType() != actual.GetType())
            {
                return path + ": expected a " + expected.GetType().Name + ", got a " + actual.GetType().Name + " (" + Show(actual) + ")";
            }
            var expectedBytes = expected as byte[];
            if (expectedBytes != null)
            {
                return ToHex(expectedBytes) == ToHex((byte[])actual) ? null : path + ": bin differs";
            }
            var expectedList = expected as List<object>;
            if (expectedList != null)
            {
                var actualList = (List<object>)actual;
                if (expectedList.Count != actualList.Count) return path + ": array length " + actualList.Count + " != " + expectedList.Count;
                for (int i = 0; i < expectedList.Count; i++)
                {
                    string d = Difference(expectedList[i], actualList[i], path + "[" + i + "]");
                    if (d != null) return d;
                }
                return null;
            }
            var expectedMap = expected as Dictionary<string, object>;
            if (expectedMap != null)
            {
                var actualMap = (Dictionary<string, object>)actual;
                var expectedKeys = new List<string>(expectedMap.Keys);
                var actualKeys = new List<string>(actualMap.Keys);
                if (string.Join(",", expectedKeys.ToArray()) != string.Join(",", actualKeys.ToArray()))
                {
                    return path + ": keys (in order) " + string.Join(",", actualKeys.ToArray()) + " != " + string.Join(",", expectedKeys.ToArray());
                }
                foreach (string key in expectedKeys)
                {
                    string d = Difference(expectedMap[key], actualMap[key], path + "." + key);
                    if (d != null) return d;
                }
                return null;
            }
            return expected.Equals(actual) ? null : path + ": expected " + Show(expected) + ", got " + Show(actual);
        }

        private static string Show(object value)
        {
            if (value == null) return "null";
            if (value is double) return ((double)value).ToString("R", CultureInfo.InvariantCulture);
            return value.ToString();
        }
    }

    /// <summary>Reads JSON into the same types the msgpack decoder gives (long for integers, double for numbers with a point).</summary>
    internal sealed class MiniJson
    {
        private readonly string _text;
        private int _pos;

        private MiniJson(string text)
        {
            _text = text;
        }

        public static object Parse(string text)
        {
            var parser = new MiniJson(text);
            object value = parser.ReadValue();
            parser.SkipSpace();
            if (parser._pos != text.Length) throw new FormatException("trailing characters in JSON at " + parser._pos);
            return value;
        }

        private object ReadValue()
        {
            SkipSpace();
            if (_pos >= _text.Length) throw new FormatException("JSON ends early");
            char c = _text[_pos];
            if (c == '{') return ReadObject();
            if (c == '[') return ReadArray();
            if (c == '"') return ReadString();
            if (Match("true")) return true;
            if (Match("false")) return false;
            if (Match("null")) return null;
            return ReadNumber();
        }

        private Dictionary<string, object> ReadObject()
        {
            var map = new Dictionary<string, object>();
            _pos++;
            SkipSpace();
            if (_text[_pos] == '}') { _pos++; return map; }
            while (true)
            {
                SkipSpace();
                string key = ReadString();
                SkipSpace();
                Expect(':');
                map[key] = ReadValue();
                SkipSpace();
                if (_text[_pos] == ',') { _pos++; continue; }
                Expect('}');
                return map;
            }
        }

        private List<object> ReadArray()
        {
            var list = new List<object>();
            _pos++;
            SkipSpace();
            if (_text[_pos] == ']') { _pos++; return list; }
            while (true)
            {
                list.Add(ReadValue());
                SkipSpace();
                if (_text[_pos] == ',') { _pos++; continue; }
                Expect(']');
                return list;
            }
        }

        private string ReadString()
        {
            Expect('"');
            var sb = new StringBuilder();
            while (true)
            {
                char c = _text[_pos++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                char e = _text[_pos++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        sb.Append((char)int.Parse(_text.Substring(_pos, 4), NumberStyles.HexNumber));
                        _pos += 4;
                        break;
                    default: throw new FormatException("bad escape in JSON string");
                }
            }
        }

        private object ReadNumber()
        {
            int start = _pos;
            while (_pos < _text.Length && "+-0123456789.eE".IndexOf(_text[_pos]) >= 0) _pos++;
            string token = _text.Substring(start, _pos - start);
            if (token.Length == 0) throw new FormatException("unexpected character in JSON at " + start);
            if (token.IndexOfAny(new[] { '.', 'e', 'E' }) >= 0) return double.Parse(token, CultureInfo.InvariantCulture);
            long asLong;
            if (long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out asLong)) return asLong;
            return ulong.Parse(token, CultureInfo.InvariantCulture);
        }

        private bool Match(string word)
        {
            if (string.CompareOrdinal(_text, _pos, word, 0, word.Length) != 0) return false;
            _pos += word.Length;
            return true;
        }

        private void Expect(char c)
        {
            if (_pos >= _text.Length || _text[_pos] != c) throw new FormatException("expected '" + c + "' in JSON at " + _pos);
            _pos++;
        }

        private void SkipSpace()
        {
            while (_pos < _text.Length && char.IsWhiteSpace(_text[_pos])) _pos++;
        }
    }
}
