// Unit tests of the ZMTP byte layer: greeting, frames short and long, READY properties, and the incremental
// reader fed one byte at a time.
using System;
using System.Collections.Generic;
using System.Text;
using NUnit.Framework;

namespace NpcDialogue.Tests
{
    [TestFixture]
    public class ZmtpTests
    {
        [Test]
        public void GreetingIsSixtyFourBytesOfZmtp31Null()
        {
            byte[] g = Zmtp.Greeting();
            Assert.AreEqual(64, g.Length);
            Assert.AreEqual(0xff, g[0]);
            Assert.AreEqual(0x7f, g[9]);
            Assert.AreEqual(3, g[10]);
            Assert.AreEqual(1, g[11]);
            Assert.AreEqual("NULL", Encoding.ASCII.GetString(g, 12, 4));
            for (int i = 16; i < 64; i++) Assert.AreEqual(0, g[i], "byte " + i);
            Zmtp.CheckGreeting(g);
        }

        [Test]
        public void ForeignGreetingsAreRefused()
        {
            byte[] curve = Zmtp.Greeting();
            Encoding.ASCII.GetBytes("CURVE").CopyTo(curve, 12);
            Assert.Throws<ZmtpException>(() => Zmtp.CheckGreeting(curve));
            byte[] http = Encoding.ASCII.GetBytes("HTTP/1.1 400 Bad Request\r\n".PadRight(64));
            Assert.Throws<ZmtpException>(() => Zmtp.CheckGreeting(http));
            byte[] old = Zmtp.Greeting();
            old[10] = 2;
            Assert.Throws<ZmtpException>(() => Zmtp.CheckGreeting(old));
        }

        [Test]
        public void FramesSwitchToLongAbove255Bytes()
        {
            Assert.AreEqual("0003616263", TestData.ToHex(Zmtp.Message(Encoding.ASCII.GetBytes("abc"), false)));
            Assert.AreEqual("0103616263", TestData.ToHex(Zmtp.Message(Encoding.ASCII.GetBytes("abc"), true)));
            Assert.AreEqual("00ff", TestData.ToHex(Zmtp.Message(new byte[255], false)).Substring(0, 4));
            byte[] longFrame = Zmtp.Message(new byte[256], false);
            Assert.AreEqual(265, longFrame.Length);
            Assert.AreEqual("020000000000000100", TestData.ToHex(longFrame).Substring(0, 18));
        }

        [Test]
        public void ReadyCarriesSocketTypeAndIdentity()
        {
            byte[] frame = Zmtp.Ready("DEALER", Encoding.ASCII.GetBytes("npc-7"));
            var body = new byte[frame.Length - 2];
            Array.Copy(frame, 2, body, 0, body.Length);
            Dictionary<string, byte[]> props = Zmtp.ParseReady(body);
            Assert.AreEqual("DEALER", Encoding.ASCII.GetString(props["Socket-Type"]));
            Assert.AreEqual("npc-7", Encoding.ASCII.GetString(props["Identity"]));
            Assert.Throws<ArgumentException>(() => Zmtp.Ready("DEALER", new byte[] { 0, 1 }));
        }

        [Test]
        public void ReaderTakesFramesFromAnySplit()
        {
            var stream = new List<byte>();
            stream.AddRange(Zmtp.Message(new byte[300], true));
            stream.AddRange(Zmtp.Ping(5, Encoding.ASCII.GetBytes("c")));
            stream.AddRange(Zmtp.Message(new byte[0], false));
            var reader = new ZmtpFrameReader(1024);
            var frames = new List<ZmtpFrame>();
            byte[] bytes = stream.ToArray();
            for (int i = 0; i < bytes.Length; i++)
            {
                reader.Feed(bytes, i, 1);
                ZmtpFrame frame;
                while ((frame = reader.Next()) != null) frames.Add(frame);
            }
            Assert.AreEqual(3, frames.Count);
            Assert.AreEqual(300, frames[0].Body.Length);
            Assert.IsTrue(frames[0].More);
            Assert.AreEqual("PING", frames[1].CommandName);
            CollectionAssert.AreEqual(new byte[] { 0, 5, (byte)'c' }, frames[1].CommandData);
            Assert.IsFalse(frames[2].IsCommand);
            Assert.AreEqual(0, reader.Buffered);
        }

        [Test]
        public void ReaderRefusesReservedFlagsAndOversizedFrames()
        {
            var reader = new ZmtpFrameReader(10);
            reader.Feed(new byte[] { 0x80, 0 }, 0, 2);
            Assert.Throws<ZmtpException>(() => reader.Next());
            var small = new ZmtpFrameReader(10);
            byte[] big = Zmtp.Message(new byte[11], false);
            small.Feed(big, 0, 2);
            Assert.Throws<ZmtpException>(() => small.Next());
        }
    }
}
