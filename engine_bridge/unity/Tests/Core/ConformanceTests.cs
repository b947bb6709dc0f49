// Shared-data tests: the protocol's golden fixtures (decode to the JSON twin, re-encode byte for byte), the
// third-party msgpack-test-suite for the types the protocol uses, and the ZMTP byte vectors pinned by the
// Python reference. Paths come from NPC_FIXTURES_DIR, NPC_MSGPACK_SUITE and NPC_ZMTP_VECTORS.
using System;
using System.Collections.Generic;
using System.IO;
using NUnit.Framework;

namespace NpcDialogue.Tests
{
    [TestFixture]
    public class ConformanceTests
    {
        // Timestamps and other ext types are not part of the protocol; the decoder refuses them by design.
        private static readonly string[] SkippedSuiteFiles = { "50.timestamp.yaml", "60.ext.yaml" };

        [Test]
        public void FixturesDecodeToTheirTwinAndReencodeByteForByte()
        {
            string dir = TestData.PathFrom("NPC_FIXTURES_DIR");
            var index = (Dictionary<string, object>)MiniJson.Parse(File.ReadAllText(Path.Combine(dir, "index.json")));
            var failures = new List<string>();
            int checkedCount = 0;
            foreach (object entry in (List<object>)index["fixtures"])
            {
                string name = (string)((Dictionary<string, object>)entry)["name"];
                byte[] bytes = File.ReadAllBytes(Path.Combine(dir, name + ".msgpack"));
                object decoded = MsgPack.Decode(bytes);
                object twin = FromTwin(MiniJson.Parse(File.ReadAllText(Path.Combine(dir, name + ".json"))));
                string difference = TestData.Difference(twin, decoded, name);
                if (difference != null) failures.Add(difference);
                if (TestData.ToHex(MsgPack.Encode(decoded)) != TestData.ToHex(bytes)) failures.Add(name + ": re-encoded bytes differ");
                checkedCount++;
            }
            Assert.Greater(checkedCount, 10, "index.json lists too few fixtures");
            Assert.IsEmpty(failures, string.Join("\n", failures.ToArray()));
        }

        [Test]
        public void SayRequestBuildsTheFixtureBytes()
        {
            string dir = TestData.PathFrom("NPC_FIXTURES_DIR");
            var twin = (Dictionary<string, object>)FromTwin(MiniJson.Parse(File.ReadAllText(Path.Combine(dir, "say_full.json"))));
            var image = (Dictionary<string, object>)twin["image"];
            var options = (Dictionary<string, object>)twin["options"];
            var request = new NpcSayRequest
            {
                Persona = (string)twin["persona"],
                Session = (string)twin["session"],
                Text = (string)twin["text"],
                Image = new NpcImage((string)image["format"], (byte[])image["data"], (int)(long)image["width"], (int)(long)image["height"]),
                Options = new NpcSayOptions
                {
                    MaxTokens = (int)(long)options["max_tokens"],
                    Temperature = (double)options["temperature"],
                    TopP = (double)options["top_p"],
                    TopK = (int)(long)options["top_k"],
                    Seed = (long)options["seed"],
                    Stream = (bool)options["stream"],
                },
            };
            foreach (KeyValuePair<string, object> pair in (Dictionary<string, object>)twin["context"])
            {
                request.Context[pair.Key] = (string)pair.Value;
            }
            byte[] built = MsgPack.Encode(request.ToMessage((string)twin["id"]));
            Assert.AreEqual(TestData.ToHex(File.ReadAllBytes(Path.Combine(dir, "say_full.msgpack"))), TestData.ToHex(built));
        }

        [Test]
        public void ReplyAndWelcomeFixturesParse()
        {
            string dir = TestData.PathFrom("NPC_FIXTURES_DIR");
            var reply = NpcMessages.ParseReply((Dictionary<string, object>)MsgPack.Decode(File.ReadAllBytes(Path.Combine(dir, "reply.msgpack"))));
            Assert.AreEqual("s-42", reply.RequestId);
            Assert.AreEqual("joy", reply.Emotion);
            Assert.AreEqual(0.6, reply.Intensity, 1e-12);
            Assert.AreEqual(7, reply.Scores.Count);
            Assert.AreEqual(48.25, reply.TimingMs["total"], 1e-12);
            var welcome = NpcMessages.ParseWelcome((Dictionary<string, object>)MsgPack.Decode(File.ReadAllBytes(Path.Combine(dir, "welcome.msgpack"))));
            CollectionAssert.AreEqual(new long[] { NpcProtocol.Version }, welcome.Protocols);
            CollectionAssert.AreEqual(NpcProtocol.Emotions, welcome.Emotions);
            var error = (Dictionary<string, object>)MsgPack.Decode(File.ReadAllBytes(Path.Combine(dir, "error_cancelled.msgpack")));
            Assert.AreEqual(NpcErrorCodes.Cancelled, error["code"]);
        }

        [Test]
        public void ErrorCodesMatchTheFixtures()
        {
            string dir = TestData.PathFrom("NPC_FIXTURES_DIR");
            var seen = new List<string>();
            foreach (string path in Directory.GetFiles(dir, "error_*.msgpack"))
            {
                var error = (Dictionary<string, object>)MsgPack.Decode(File.ReadAllBytes(path));
                seen.Add((string)error["code"]);
            }
            CollectionAssert.AreEquivalent(NpcErrorCodes.ServerCodes, seen);
        }

        [Test]
        public void MsgpackTestSuitePasses()
        {
            string path = TestData.PathFrom("NPC_MSGPACK_SUITE");
            var suite = (Dictionary<string, object>)MiniJson.Parse(File.ReadAllText(path));
            var failures = new List<string>();
            int cases = 0;
            foreach (KeyValuePair<string, object> file in suite)
            {
                if (Array.IndexOf(SkippedSuiteFiles, file.Key) >= 0) continue;
                int n = 0;
                foreach (object raw in (List<object>)file.Value)
                {
                    string label = file.Key + "#" + n++;
                    var testCase = (Dictionary<string, object>)raw;
                    object expected = SuiteValue(testCase);
                    var encodings = new List<string>();
                    foreach (object hex in (List<object>)testCase["msgpack"]) encodings.Add(((string)hex).Replace("-", ""));
                    foreach (string hex in encodings)
                    {
                        object decoded;
                        try
                        {
                            decoded = MsgPack.Decode(TestData.Hex(hex));
                        }
                        catch (MsgPackException exc)
                        {
                            failures.Add(label + " " + hex + ": " + exc.Message);
                            continue;
                        }
                        if (!SameValue(expected, decoded)) failures.Add(label + " " + hex + ": decoded to " + decoded);
                    }
                    string wanted = CanonicalEncoding(expected, encodings);
                    string encoded = TestData.ToHex(MsgPack.Encode(expected));
                    if (encoded != wanted) failures.Add(label + ": encoded " + encoded + ", expected " + wanted);
                    cases++;
                }
            }
            Assert.Greater(cases, 40, "the suite file has too few cases");
            Assert.IsEmpty(failures, string.Join("\n", failures.ToArray()));
        }

        [Test]
        public void ZmtpBytesMatchThePythonReference()
        {
            string path = TestData.PathFrom("NPC_ZMTP_VECTORS");
            var root = (Dictionary<string, object>)MiniJson.Parse(File.ReadAllText(path));
            var seen = new List<string>();
            foreach (object raw in (List<object>)root["vectors"])
            {
                var v = (Dictionary<string, object>)raw;
                string name = (string)v["name"];
                string expected = (string)v["bytes"];
                byte[] ours;
                if (name == "greeting") ours = Zmtp.Greeting();
                else if (name.StartsWith("ready_dealer", StringComparison.Ordinal)) ours = Zmtp.Ready("DEALER", TestData.Hex((string)v["identity"]));
                else if (name.StartsWith("message_", StringComparison.Ordinal)) ours = Zmtp.Message(TestData.Hex((string)v["payload"]), false);
                else if (name == "ping") ours = Zmtp.Ping(ushort.Parse((string)v["ttl_deciseconds"]), TestData.Hex((string)v["context"]));
                else if (name == "pong") ours = Zmtp.Pong(TestData.Hex((string)v["context"]));
                else
                {
                    Assert.Fail("unknown vector " + name + ": teach this test about it");
                    return;
                }
                Assert.AreEqual(expected, TestData.ToHex(ours), name);
                seen.Add(name);
            }
            Assert.Contains("greeting", seen);
            Assert.Contains("message_long", seen);
        }

        private static object FromTwin(object value)
        {
            var map = value as Dictionary<string, object>;
            if (map != null)
            {
                if (map.Count == 1 && map.ContainsKey("$bin")) return Convert.FromBase64String((string)map["$bin"]);
                var copy = new Dictionary<string, object>();
                foreach (KeyValuePair<string, object> pair in map) copy[pair.Key] = FromTwin(pair.Value);
                return copy;
            }
            var list = value as List<object>;
            if (list != null) return list.ConvertAll(FromTwin);
            return value;
        }

        private static object SuiteValue(Dictionary<string, object> testCase)
        {
            if (testCase.ContainsKey("bignum"))
            {
                var text = (string)testCase["bignum"];
                long asLong;
                if (long.TryParse(text, out asLong)) return asLong;
                return ulong.Parse(text);
            }
            foreach (string kind in new[] { "nil", "bool", "number", "string", "array", "map" })
            {
                if (testCase.ContainsKey(kind)) return testCase[kind];
            }
            if (testCase.ContainsKey("binary"))
            {
                var hex = (string)testCase["binary"];
                return hex.Length == 0 ? new byte[0] : TestData.Hex(hex);
            }
            throw new InvalidOperationException("unknown suite case kind: " + string.Join(",", new List<string>(testCase.Keys).ToArray()));
        }

        /// <summary>Equality where an integer and a float of the same value match (the suite lists both forms).</summary>
        private static bool SameValue(object expected, object actual)
        {
            if (IsNumber(expected) && IsNumber(actual))
            {
                if (expected is double || actual is double) return Convert.ToDouble(expected) == Convert.ToDouble(actual);
                if (expected is ulong || actual is ulong) return expected.GetType() == actual.GetType() && expected.Equals(actual);
                return Convert.ToInt64(expected) == Convert.ToInt64(actual);
            }
            var expectedList = expected as List<object>;
            if (expectedList != null)
            {
                var actualList = actual as List<object>;
                if (actualList == null || actualList.Count != expectedList.Count) return false;
                for (int i = 0; i < expectedList.Count; i++) if (!SameValue(expectedList[i], actualList[i])) return false;
                return true;
            }
            var expectedMap = expected as Dictionary<string, object>;
            if (expectedMap != null)
            {
                var actualMap = actual as Dictionary<string, object>;
                if (actualMap == null || actualMap.Count != expectedMap.Count) return false;
                foreach (KeyValuePair<string, object> pair in expectedMap)
                {
                    if (!actualMap.ContainsKey(pair.Key) || !SameValue(pair.Value, actualMap[pair.Key])) return false;
                }
                return true;
            }
            return TestData.Difference(expected, actual, "$") == null;
        }

        private static bool IsNumber(object value)
        {
            return value is long || value is ulong || value is double;
        }

        /// <summary>
        /// What the protocol's encoder must write: float 64 for a float; otherwise the shortest non-float form
        /// listed, unsigned for a non-negative integer (as the server's msgpack writes it).
        /// </summary>
        private static string CanonicalEncoding(object value, List<string> encodings)
        {
            if (value is double) return encodings.Find(e => e.StartsWith("cb", StringComparison.Ordinal));
            string best = null;
            foreach (string e in encodings)
            {
                if (e.StartsWith("ca", StringComparison.Ordinal) || e.StartsWith("cb", StringComparison.Ordinal)) continue;
                bool signedForm = e.StartsWith("d0", StringComparison.Ordinal) || e.StartsWith("d1", StringComparison.Ordinal)
                    || e.StartsWith("d2", StringComparison.Ordinal) || e.StartsWith("d3", StringComparison.Ordinal);
                bool nonNegative = (value is long && (long)value >= 0) || value is ulong;
                if (signedForm && nonNegative) continue;
                if (best == null || e.Length < best.Length) best = e;
            }
            return best;
        }
    }
}
