// One ZMTP 3.1 DEALER connection over a TCP socket: connect and handshake with a deadline, send single-frame
// messages, receive whole messages while answering PING and noting PONG. Thread use: one thread receives,
// any thread may send (sends are serialised). NpcClient adds reconnecting, requests and events on top.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace NpcDialogue
{
    /// <summary>A connected ZMTP 3.1 DEALER (NULL mechanism). Create it with <see cref="Connect"/>.</summary>
    public sealed class ZmtpDealer : IDisposable
    {
        private readonly Socket _socket;
        private readonly ZmtpFrameReader _reader;
        private readonly object _sendLock = new object();
        private readonly byte[] _receiveBuffer = new byte[64 * 1024];
        private readonly List<byte[]> _parts = new List<byte[]>();
        private volatile bool _closed;

        private ZmtpDealer(Socket socket, long maxFrameBytes)
        {
            _socket = socket;
            _reader = new ZmtpFrameReader(maxFrameBytes);
            LastReceivedMs = MonotonicMs();
        }

        /// <summary>The peer's READY properties (e.g. "Socket-Type" = "ROUTER").</summary>
        public Dictionary<string, byte[]> PeerProperties { get; private set; }

        /// <summary>Monotonic time (see <see cref="MonotonicMs"/>) of the last bytes received.</summary>
        public long LastReceivedMs { get; private set; }

        /// <summary>How many PONG commands arrived.</summary>
        public long PongCount { get; private set; }

        /// <summary>Milliseconds from an arbitrary start that never goes back.</summary>
        public static long MonotonicMs()
        {
            return Stopwatch.GetTimestamp() * 1000L / Stopwatch.Frequency;
        }

        /// <summary>
        /// Connects to <paramref name="host"/>:<paramref name="port"/> and completes the ZMTP handshake within
        /// <paramref name="timeoutMs"/>; an empty <paramref name="identity"/> lets the server pick one.
        /// </summary>
        public static ZmtpDealer Connect(string host, int port, byte[] identity, int timeoutMs, long maxFrameBytes)
        {
            if (timeoutMs <= 0) throw new ArgumentOutOfRangeException("timeoutMs");
            long deadline = MonotonicMs() + timeoutMs;
            IPAddress address = Resolve(host);
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            ZmtpDealer dealer = null;
            try
            {
                IAsyncResult pending = socket.BeginConnect(address, port, null, null);
                if (!pending.AsyncWaitHandle.WaitOne(timeoutMs))
                {
                    throw new ZmtpException(string.Format("no TCP connection to {0}:{1} within {2} ms", host, port, timeoutMs));
                }
                socket.EndConnect(pending);
                socket.NoDelay = true;
                socket.SendTimeout = timeoutMs;
                dealer = new ZmtpDealer(socket, maxFrameBytes);
                dealer.Handshake(identity, deadline);
                return dealer;
            }
            catch (SocketException exc)
            {
                socket.Close();
                throw new ZmtpException(string.Format("cannot connect to {0}:{1}: {2}", host, port, exc.Message), exc);
            }
            catch (Exception)
            {
                socket.Close();
                throw;
            }
        }

        /// <summary>Sends one single-frame message.</summary>
        public void Send(byte[] payload)
        {
            SendRaw(Zmtp.Message(payload, false));
        }

        /// <summary>Sends a PING; the server's PONG shows up in <see cref="PongCount"/>.</summary>
        public void SendPing(ushort ttlDeciseconds, byte[] context)
        {
            SendRaw(Zmtp.Ping(ttlDeciseconds, context));
        }

        /// <summary>
        /// Waits up to <paramref name="timeoutMs"/> for bytes and adds every whole message that arrived to
        /// <paramref name="messages"/> (each as its frames). Throws <see cref="ZmtpException"/> when the
        /// connection is gone.
        /// </summary>
        public void Receive(int timeoutMs, List<byte[][]> messages)
        {
            try
            {
                if (!_socket.Poll(Math.Max(0, timeoutMs) * 1000, SelectMode.SelectRead)) return;
                int received = _socket.Receive(_receiveBuffer);
                if (received == 0) throw new ZmtpException("the server closed the connection");
                LastReceivedMs = MonotonicMs();
                _reader.Feed(_receiveBuffer, 0, received);
            }
            catch (SocketException exc)
            {
                throw new ZmtpException("receive failed: " + exc.Message, exc);
            }
            catch (ObjectDisposedException exc)
            {
                throw new ZmtpException("the connection is closed", exc);
            }
            ZmtpFrame frame;
            while ((frame = _reader.Next()) != null)
            {
                if (frame.IsCommand)
                {
                    OnCommand(frame);
                    continue;
                }
                _parts.Add(frame.Body);
                if (!frame.More)
                {
                    messages.Add(_parts.ToArray());
                    _parts.Clear();
                }
            }
        }

        /// <summary>Closes the socket at once (no linger).</summary>
        public void Dispose()
        {
            if (_closed) return;
            _closed = true;
            try
            {
                _socket.LingerState = new LingerOption(true, 0);
            }
            catch (SocketException)
            {
                // Already broken; closing is all that is left.
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            _socket.Close();
        }

        private void Handshake(byte[] identity, long deadline)
        {
            SendRaw(Zmtp.Greeting());
            var greeting = new byte[Zmtp.GreetingBytes];
            int have = 0;
            while (have < greeting.Length)
            {
                have += ReceiveSome(greeting, have, greeting.Length - have, deadline);
            }
            Zmtp.CheckGreeting(greeting);
            SendRaw(Zmtp.Ready("DEALER", identity));
            ZmtpFrame frame;
            while ((frame = _reader.Next()) == null)
            {
                int n = ReceiveSome(_receiveBuffer, 0, _receiveBuffer.Length, deadline);
                _reader.Feed(_receiveBuffer, 0, n);
            }
            if (frame.CommandName == "ERROR") throw new ZmtpException("server refused the handshake: " + ErrorReason(frame));
            if (frame.CommandName != "READY") throw new ZmtpException("server sent something other than READY during the handshake");
            PeerProperties = Zmtp.ParseReady(frame.Body);
        }

        private int ReceiveSome(byte[] buffer, int offset, int count, long deadline)
        {
            long remaining = deadline - MonotonicMs();
            if (remaining <= 0 || !_socket.Poll((int)Math.Min(remaining, int.MaxValue / 1000) * 1000, SelectMode.SelectRead))
            {
                throw new ZmtpException("the server did not complete the ZMTP handshake in time");
            }
            int n = _socket.Receive(buffer, offset, count, SocketFlags.None);
            if (n == 0) throw new ZmtpException("the server closed the connection during the handshake");
            LastReceivedMs = MonotonicMs();
            return n;
        }

        private void OnCommand(ZmtpFrame frame)
        {
            string name = frame.CommandName;
            if (name == "PING")
            {
                byte[] data = frame.CommandData;
                var context = new byte[Math.Max(0, data.Length - 2)];
                if (context.Length > 0) Buffer.BlockCopy(data, 2, context, 0, context.Length);
                SendRaw(Zmtp.Pong(context));
            }
            else if (name == "PONG")
            {
                PongCount++;
            }
            else if (name == "ERROR")
            {
                throw new ZmtpException("server sent ERROR: " + ErrorReason(frame));
            }
            // Other commands (SUBSCRIBE, CANCEL, a late READY) mean nothing to a DEALER and are ignored.
        }

        private static string ErrorReason(ZmtpFrame frame)
        {
            byte[] data = frame.CommandData;
            if (data.Length == 0) return "(no reason)";
            int length = Math.Min(data[0], data.Length - 1);
            return Encoding.UTF8.GetString(data, 1, length);
        }

        private void SendRaw(byte[] bytes)
        {
            lock (_sendLock)
            {
                try
                {
                    int sent = 0;
                    while (sent < bytes.Length)
                    {
                        sent += _socket.Send(bytes, sent, bytes.Length - sent, SocketFlags.None);
                    }
                }
                catch (SocketException exc)
                {
                    throw new ZmtpException("send failed: " + exc.Message, exc);
                }
                catch (ObjectDisposedException exc)
                {
                    throw new ZmtpException("the connection is closed", exc);
                }
            }
        }

        private static IPAddress Resolve(string host)
        {
            IPAddress address;
            if (IPAddress.TryParse(host, out address)) return address;
            IPAddress[] candidates;
            try
            {
                candidates = Dns.GetHostAddresses(host);
            }
            catch (SocketException exc)
            {
                throw new ZmtpException("cannot resolve host '" + host + "': " + exc.Message, exc);
            }
            foreach (IPAddress candidate in candidates)
            {
                if (candidate.AddressFamily == AddressFamily.InterNetwork) return candidate;
            }
            if (candidates.Length == 0) throw new ZmtpException("host '" + host + "' has no address");
            return candidates[0];
        }
    }
}
