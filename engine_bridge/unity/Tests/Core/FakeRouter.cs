// A scripted single-connection ZMTP ROUTER for client tests that need no real server: it handshakes, hands
// every request to a script that returns the replies, answers PING, and can drop the connection on demand.
using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Threading;

namespace NpcDialogue.Tests
{
    internal sealed class FakeRouter : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly Func<Dictionary<string, object>, List<Dictionary<string, object>>> _script;
        private readonly Thread _thread;
        private volatile bool _stopping;
        private volatile Socket _current;
        public readonly List<Dictionary<string, object>> Received = new List<Dictionary<string, object>>();
        public int Connections;
        public int PingsSeen;
        public volatile bool AnswerPings = true;

        public FakeRouter(Func<Dictionary<string, object>, List<Dictionary<string, object>>> script)
        {
            _script = script;
            _listener = new TcpListener(IPAddress.Loopback, 0);
            _listener.Start();
            _thread = new Thread(Serve) { IsBackground = true, Name = "FakeRouter" };
            _thread.Start();
        }

        public string Endpoint
        {
            get { return "tcp://127.0.0.1:" + ((IPEndPoint)_listener.LocalEndpoint).Port; }
        }

        /// <summary>Closes the current connection (the listener stays, so the client can reconnect).</summary>
        public void DropConnection()
        {
            Socket socket = _current;
            if (socket != null) socket.Close();
        }

        public void Dispose()
        {
            _stopping = true;
            _listener.Stop();
            DropConnection();
            _thread.Join(5000);
        }

        private void Serve()
        {
            while (!_stopping)
            {
                Socket socket;
                try
                {
                    socket = _listener.AcceptSocket();
                }
                catch (SocketException)
                {
                    return;
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
                _current = socket;
                Interlocked.Increment(ref Connections);
                try
                {
                    Handle(socket);
                }
                catch (SocketException)
                {
                    // The client or DropConnection closed it; wait for the next one.
                }
                catch (ObjectDisposedException)
                {
                }
                finally
                {
                    socket.Close();
                }
            }
        }

        private void Handle(Socket socket)
        {
            socket.Send(Zmtp.Greeting());
            var reader = new ZmtpFrameReader(1 << 24);
            var buffer = new byte[65536];
            int greetingLeft = Zmtp.GreetingBytes;
            bool ready = false;
            while (!_stopping)
            {
                int n = socket.Receive(buffer);
                if (n == 0) return;
                int offset = 0;
                if (greetingLeft > 0)
                {
                    int take = Math.Min(greetingLeft, n);
                    greetingLeft -= take;
                    offset = take;
                    if (greetingLeft == 0) socket.Send(Zmtp.Ready("ROUTER", null));
                }
                reader.Feed(buffer, offset, n - offset);
                ZmtpFrame frame;
                while ((frame = reader.Next()) != null)
                {
                    if (frame.IsCommand)
                    {
                        if (frame.CommandName == "READY") ready = true;
                        if (frame.CommandName == "PING")
                        {
                            Interlocked.Increment(ref PingsSeen);
                            if (AnswerPings) socket.Send(Zmtp.Pong(new byte[0]));
                        }
                        continue;
                    }
                    if (!ready) throw new InvalidOperationException("message before READY");
                    var request = (Dictionary<string, object>)MsgPack.Decode(frame.Body);
                    lock (Received) Received.Add(request);
                    List<Dictionary<string, object>> replies = _script(request);
                    if (replies == null) continue;
                    foreach (Dictionary<string, object> reply in replies) socket.Send(Zmtp.Message(MsgPack.Encode(reply), false));
                }
            }
        }

        public static Dictionary<string, object> ReplyTo(Dictionary<string, object> request, string type)
        {
            return new Dictionary<string, object> { { "v", 1L }, { "id", request["id"] }, { "type", type } };
        }
    }
}
