// Unit tests of the C# msgpack codec: smallest encodings, float 64 always, string keys, and refusal of
// malformed or hostile input.
using System;
using System.Collections.Generic;
using NUnit.Framework;

namespace NpcDialogue.Tests
{
    [TestFixture]
    public class MsgPackTests
    {
        private static string Hex(object value)
        {
            return TestData.ToHex(MsgPack.Encode(value));
        }

        [Test]
        public void IntegersUseTheSmallestEncoding()
        {
            Assert.AreEqual("00", Hex(0));
            Assert.AreEqual("7f", Hex(127L));
            Assert.AreEqual("cc80", Hex(128));
            Assert.AreEqual("cd0100", Hex(256));
            Assert.AreEqual("ce00010000", Hex(65536));
            Assert.AreEqual("cf0000000100000000", Hex(4294967296L));
            Assert.AreEqual("ff", Hex(-1));
            Assert.AreEqual("e0", Hex(-32));
            Assert.AreEqual("d0df", Hex(-33));
            Assert.AreEqual("d1ff7f", Hex(-129));
            Assert.AreEqual("d2ffff7fff", Hex(-32769));
            Assert.AreEqual("d38000000000000000", Hex(long.MinValue));
            Assert.AreEqual("cfffffffffffffffff", Hex(ulong.MaxValue));
        }

        [Test]
        public void FloatsAreAlwaysFloat64()
        {
            Assert.AreEqual("cb3fe0000000000000", Hex(0.5));
            Assert.AreEqual("cb3fe0000000000000", Hex(0.5f));
            Assert.AreEqual("cb0000000000000000", Hex(0.0));
            Assert.AreEqual(0.5, MsgPack.Decode(TestData.Hex("ca3f000000")));
        }

        [Test]
        public void StringsBinariesAndContainersRoundTrip()
        {
            var map = new Dictionary<string, object>
            {
                { "text", "Ünïcødé ⚔" },
                { "data", new byte[] { 0, 1, 255 } },
                { "list", new List<object> { 1L, "two", null, true, 2.5 } },
                { "nested", new Dictionary<string, object> { { "k", new List<object>() } } },
            };
            object back = MsgPack.Decode(MsgPack.Encode(map));
            Assert.IsNull(TestData.Difference(map, back, "$"));
        }

        [Test]
        public void HeadersGrowWithLength()
        {
            Assert.AreEqual("d920", Hex(new string('a', 32)).Substring(0, 4));
            Assert.AreEqual("da0100", Hex(new string('a', 256)).Substring(0, 6));
            Assert.AreEqual("c40100", Hex(new byte[1]).Substring(0, 6));
            Assert.AreEqual("c50100", Hex(new byte[256]).Substring(0, 6));
            Assert.AreEqual("dc0010", Hex(new object[16]).Substring(0, 6));
            var big = new Dictionary<string, object>();
            for (int i = 0; i < 16; i++) big["k" + i] = i;
            Assert.AreEqual("de0010", Hex(big).Substring(0, 6));
        }

        [Test]
        public void MapKeysMustBeStrings()
        {
            var intKeys = new Dictionary<int, object> { { 1, "a" } };
            Assert.Throws<MsgPackException>(() => MsgPack.Encode(intKeys));
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("810102")));
        }

        [Test]
        public void UnusedTypesAreRefused()
        {
            Assert.Throws<MsgPackException>(() => MsgPack.Encode(new object()));
            Assert.Throws<MsgPackException>(() => MsgPack.Encode(DayOfWeek.Monday));
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("d6ff00000000"))); // timestamp ext
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("c1")));
        }

        [Test]
        public void TruncatedAndTrailingInputIsRefused()
        {
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(new byte[0]));
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("a3616263ff")));
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("a36162")));
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("cb3fe0")));
            // A map that claims 2^32-1 entries in five bytes must fail fast, not allocate.
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("dfffffffff")));
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("c6ffffffff00")));
        }

        [Test]
        public void InvalidUtf8IsRefused()
        {
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("a2c328")));
        }

        [Test]
        public void DeepNestingIsRefused()
        {
            var bytes = new byte[MsgPack.MaxDepth + 2];
            for (int i = 0; i < bytes.Length - 1; i++) bytes[i] = 0x91;
            bytes[bytes.Length - 1] = 0xc0;
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(bytes));
        }

        [Test]
        public void DuplicateKeysAreRefused()
        {
            Assert.Throws<MsgPackException>(() => MsgPack.Decode(TestData.Hex("82a16101a16102")));
        }
    }
}
