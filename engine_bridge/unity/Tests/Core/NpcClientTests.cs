// NpcClient against the scripted FakeRouter: request/reply matching, streaming, server errors, client-side
// timeouts, cancellation, and reconnecting after the connection drops. Waits are bounded so a bug fails
// the test instead of hanging it; nothing asserts on durations.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace NpcDialogue.Tests
{
    [TestFixture]
    public class NpcClientTests
    {
        private const int WaitMs = 15000;

        private static NpcClient StartClient(string endpoint, int requestTimeoutMs)
        {
            NpcClient client = NewClient(endpoint, requestTimeoutMs);
            client.Start();
            return client;
        }

        // Not started: a test that counts events subscribes first, or the first connection can come before it.
        private static NpcClient NewClient(string endpoint, int requestTimeoutMs)
        {
            return new NpcClient(new NpcClientOptions
            {
                Endpoint = endpoint,
                RequestTimeoutMs = requestTimeoutMs,
                ReconnectMinMs = 20,
                ReconnectMaxMs = 100,
                Identity = "npc-test",
            });
        }

        private static T Result<T>(Task<T> task)
        {
            Finish(task);
            return task.Result;
        }

        private static void Finish(Task task)
        {
            try
            {
                if (!task.Wait(WaitMs)) Assert.Fail("the task did not finish");
            }
            catch (AggregateException)
            {
                // Inspected by the caller through task.Exception / task.IsCanceled.
            }
        }

        private static NpcRequestException Failure(Task task)
        {
            Finish(task);
            Assert.IsTrue(task.IsFaulted, "the task should have failed");
            var exc = task.Exception.GetBaseException() as NpcRequestException;
            Assert.IsNotNull(exc, "expected NpcRequestException, got " + task.Exception.GetBaseException());
            return exc;
        }

        private static string ClosedPortEndpoint()
        {
            var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            listener.Start();
            int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            return "tcp://127.0.0.1:" + port;
        }

        private static NpcSayRequest Say(string text)
        {
            return new NpcSayRequest { Persona = "blacksmith", Session = "test:blacksmith", Text = text };
        }

        [Test]
        public void OptionsAreValidated()
        {
            Assert.Throws<ArgumentException>(() => new NpcClient(new NpcClientOptions { Endpoint = "127.0.0.1:5555" }));
            Assert.Throws<ArgumentException>(() => new NpcClient(new NpcClientOptions { Endpoint = "tcp://host:99999" }));
            Assert.Throws<ArgumentException>(() => new NpcClient(new NpcClientOptions { RequestTimeoutMs = 0 }));
            Assert.Throws<ArgumentException>(() => new NpcClient(new NpcClientOptions { ReconnectMinMs = 500, ReconnectMaxMs = 100 }));
            Assert.Throws<ArgumentException>(() => new NpcClient(new NpcClientOptions { HeartbeatIntervalMs = 5000, HeartbeatTimeoutMs = 1000 }));
            var options = new NpcClientOptions { Endpoint = "tcp://localhost:6000" };
            options.Validate();
            Assert.AreEqual("localhost", options.Host);
            Assert.AreEqual(6000, options.Port);
        }

        [Test]
        public void HelloGetsWelcome()
        {
            using (var router = new FakeRouter(request =>
            {
                Dictionary<string, object> welcome = FakeRouter.ReplyTo(request, "welcome");
                welcome["protocol"] = new List<object> { 1L };
                welcome["personas"] = new List<object> { "bard", "guard" };
                return new List<Dictionary<string, object>> { welcome };
            }))
            using (NpcClient client = StartClient(router.Endpoint, WaitMs))
            {
                NpcWelcome welcome = Result(client.HelloAsync());
                CollectionAssert.AreEqual(new[] { "bard", "guard" }, welcome.Personas);
                Assert.AreEqual("hello", router.Received[0]["type"]);
                Assert.AreEqual(1L, router.Received[0]["v"]);
            }
        }

        [Test]
        public void SayStreamsChunksThenReply()
        {
            using (var router = new FakeRouter(request =>
            {
                var replies = new List<Dictionary<string, object>>();
                foreach (string piece in new[] { "Aye,", " lad." })
                {
                    Dictionary<string, object> chunk = FakeRouter.ReplyTo(request, "chunk");
                    chunk["text"] = piece;
                    chunk["seq"] = (long)replies.Count;
                    replies.Add(chunk);
                }
                Dictionary<string, object> reply = FakeRouter.ReplyTo(request, "reply");
                reply["text"] = "Aye, lad.";
                reply["emotion"] = new Dictionary<string, object> { { "label", "joy" }, { "intensity", 0.75 }, { "scores", new Dictionary<string, object>() } };
                replies.Add(reply);
                return replies;
            }))
            using (NpcClient client = StartClient(router.Endpoint, WaitMs))
            {
                var pieces = new List<string>();
                var events = new List<string>();
                client.LineChunk += c => { lock (events) events.Add("chunk " + c.Seq); };
                client.LineFinished += r => { lock (events) events.Add("finished " + r.Emotion); };
                NpcSayRequest request = Say("Hello?");
                Task<NpcReply> task = client.SayAsync(request, c => { lock (pieces) pieces.Add(c.Text); });
                Assert.IsNotNull(request.Id, "SayAsync fills in the request id");
                NpcReply reply = Result(task);
                Assert.AreEqual("Aye, lad.", reply.Text);
                Assert.AreEqual("joy", reply.Emotion);
                Assert.AreEqual(0.75, reply.Intensity, 1e-12);
                Assert.AreEqual(request.Id, reply.RequestId);
                CollectionAssert.AreEqual(new[] { "Aye,", " lad." }, pieces);
                CollectionAssert.AreEqual(new[] { "chunk 0", "chunk 1", "finished joy" }, events);
                var options = (Dictionary<string, object>)router.Received[0]["options"];
                Assert.AreEqual(true, options["stream"]);
            }
        }

        [Test]
        public void ServerErrorFailsTheTaskAndRaisesRequestFailed()
        {
            using (var router = new FakeRouter(request =>
            {
                Dictionary<string, object> error = FakeRouter.ReplyTo(request, "error");
                error["code"] = "unknown_persona";
                error["message"] = "no persona 'ghost'";
                return new List<Dictionary<string, object>> { error };
            }))
            using (NpcClient client = StartClient(router.Endpoint, WaitMs))
            {
                NpcRequestException raised = null;
                client.RequestFailed += e => raised = e;
                NpcRequestException exc = Failure(client.SayAsync(Say("Boo")));
                Assert.AreEqual(NpcErrorCodes.UnknownPersona, exc.Code);
                Assert.AreEqual("no persona 'ghost'", exc.ErrorMessage);
                Assert.AreSame(exc, raised);
            }
        }

        [Test]
        public void UnansweredRequestTimesOut()
        {
            using (var router = new FakeRouter(request => null))
            using (NpcClient client = StartClient(router.Endpoint, 300))
            {
                Assert.AreEqual(NpcErrorCodes.Timeout, Failure(client.HelloAsync()).Code);
            }
        }

        [Test]
        public void UnreachableServerIsReportedOffline()
        {
            using (NpcClient client = StartClient(ClosedPortEndpoint(), 300))
            {
                NpcRequestException exc = Failure(client.HelloAsync());
                Assert.AreEqual(NpcErrorCodes.Offline, exc.Code);
                StringAssert.Contains("never connected", exc.ErrorMessage);
            }
        }

        [Test]
        public void CancellingASentSayAsksTheServer()
        {
            using (var router = new FakeRouter(request =>
            {
                if ((string)request["type"] != "cancel") return null; // the say is left running
                Dictionary<string, object> ok = FakeRouter.ReplyTo(request, "cancel.ok");
                ok["target"] = request["target"];
                ok["found"] = true;
                Dictionary<string, object> cancelled = FakeRouter.ReplyTo(request, "error");
                cancelled["id"] = request["target"];
                cancelled["code"] = "cancelled";
                cancelled["message"] = "cancelled by request";
                return new List<Dictionary<string, object>> { ok, cancelled };
            }))
            using (NpcClient client = StartClient(router.Endpoint, WaitMs))
            using (var cts = new CancellationTokenSource())
            {
                NpcRequestException failed = null;
                client.RequestFailed += e => failed = e;
                NpcSayRequest request = Say("Tell me a long story.");
                Task<NpcReply> task = client.SayAsync(request, null, cts.Token);
                SpinUntil(() => { lock (router.Received) return router.Received.Count == 1; });
                SpinUntil(() => client.PendingSayIds().Contains(request.Id));
                cts.Cancel();
                Finish(task);
                Assert.IsTrue(task.IsCanceled, "the say ends as cancelled");
                lock (router.Received)
                {
                    Assert.AreEqual("cancel", router.Received[1]["type"]);
                    Assert.AreEqual(request.Id, router.Received[1]["target"]);
                }
                Assert.IsNull(failed, "a requested cancel is not a failure");
            }
        }

        [Test]
        public void CancellingBeforeSendingNeverReachesTheServer()
        {
            using (NpcClient client = StartClient(ClosedPortEndpoint(), WaitMs))
            using (var cts = new CancellationTokenSource())
            {
                Task<NpcReply> task = client.SayAsync(Say("Hello?"), null, cts.Token);
                cts.Cancel();
                Finish(task);
                Assert.IsTrue(task.IsCanceled);
                CollectionAssert.IsEmpty(client.PendingSayIds());
            }
        }

        [Test]
        public void DroppedConnectionFailsInFlightAndReconnects()
        {
            int says = 0;
            using (var router = new FakeRouter(request =>
            {
                if ((string)request["type"] == "say" && Interlocked.Increment(ref says) == 1) return null; // first say hangs
                return new List<Dictionary<string, object>> { FakeRouter.ReplyTo(request, (string)request["type"] == "say" ? "reply" : "welcome") };
            }))
            using (NpcClient client = NewClient(router.Endpoint, WaitMs))
            {
                var connected = new CountdownEvent(2);
                var disconnected = new ManualResetEvent(false);
                client.Connected += () => { if (connected.CurrentCount > 0) connected.Signal(); };
                client.Disconnected += reason => disconnected.Set();
                client.Start(); // after subscribing: the first Connected must not come before the handler
                Task<NpcReply> hanging = client.SayAsync(Say("Are you there?"));
                SpinUntil(() => { lock (router.Received) return router.Received.Count == 1; });
                router.DropConnection();
                Assert.AreEqual(NpcErrorCodes.Disconnected, Failure(hanging).Code);
                Assert.IsTrue(disconnected.WaitOne(WaitMs), "Disconnected was raised");
                Assert.IsNotNull(Result(client.HelloAsync()), "requests work again after the reconnect");
                Assert.IsTrue(connected.Wait(WaitMs), "Connected was raised twice");
                Assert.AreEqual(2, router.Connections);
            }
        }

        [Test]
        public void HeartbeatsKeepAQuietConnectionAndDropADeadOne()
        {
            using (var router = new FakeRouter(request => new List<Dictionary<string, object>> { FakeRouter.ReplyTo(request, "welcome") }))
            using (var client = new NpcClient(new NpcClientOptions
            {
                Endpoint = router.Endpoint,
                HeartbeatIntervalMs = 30,
                HeartbeatTimeoutMs = 4000, // generous: a loaded CI machine can stall the answering thread for a second
                ReconnectMinMs = 20,
                ReconnectMaxMs = 100,
            }))
            {
                var dropped = new ManualResetEvent(false);
                client.Disconnected += reason => dropped.Set();
                client.Start();
                Result(client.HelloAsync());
                SpinUntil(() => Volatile.Read(ref router.PingsSeen) >= 3);
                Assert.AreEqual(1, router.Connections, "answered pings keep the first connection");
                Assert.IsFalse(dropped.WaitOne(0));
                router.AnswerPings = false;
                Assert.IsTrue(dropped.WaitOne(WaitMs), "a server that stops answering is dropped");
                SpinUntil(() => router.Connections >= 2);
            }
        }

        [Test]
        public void ThrowingHandlersDoNotStopTheClient()
        {
            using (var router = new FakeRouter(request => new List<Dictionary<string, object>> { FakeRouter.ReplyTo(request, "reply") }))
            using (NpcClient client = StartClient(router.Endpoint, WaitMs))
            {
                client.LineFinished += r => { throw new InvalidOperationException("game code bug"); };
                Result(client.SayAsync(Say("One")));
                Result(client.SayAsync(Say("Two")));
            }
        }

        [Test]
        public void DisposeFailsWhatIsStillWaiting()
        {
            var client = StartClient(ClosedPortEndpoint(), WaitMs);
            Task<NpcWelcome> task = client.HelloAsync();
            client.Dispose();
            Assert.AreEqual(NpcErrorCodes.Disconnected, Failure(task).Code);
            Assert.Throws<ObjectDisposedException>(() => client.RequestAsync(NpcProtocol.Hello, null));
        }

        private static void SpinUntil(Func<bool> condition)
        {
            if (!SpinWait.SpinUntil(condition, WaitMs)) Assert.Fail("condition not reached");
        }
    }
}
