// Integration check of the C# core against the real Python server, run under mono by the project's pytest
// harness (tests/engine_bridge/test_unity_core.py). Usage: NpcIntegration.exe tcp://127.0.0.1:PORT
// For the restart check it prints "RESTART" and waits for a line "RESTARTED" on standard input.
// It ends with the line "N passed, M failed" and exits non-zero when anything failed.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace NpcDialogue.Integration
{
    public static class Program
    {
        private const int WaitMs = 60000;
        private static int _passed;
        private static int _failed;

        public static int Main(string[] args)
        {
            if (args.Length != 1)
            {
                Console.Error.WriteLine("usage: NpcIntegration.exe tcp://127.0.0.1:PORT");
                return 2;
            }
            var options = new NpcClientOptions
            {
                Endpoint = args[0],
                Identity = "npc-integration",
                RequestTimeoutMs = WaitMs,
                ReconnectMinMs = 50,
                ReconnectMaxMs = 500,
                Log = line => Console.Error.WriteLine("client: " + line),
            };
            using (var client = new NpcClient(options))
            {
                int connects = 0;
                var disconnected = new ManualResetEvent(false);
                client.Connected += () => Interlocked.Increment(ref connects);
                client.Disconnected += reason => disconnected.Set();
                client.Start();

                NpcWelcome welcome = null;
                Check("hello", () =>
                {
                    welcome = Wait(client.HelloAsync());
                    Expect(welcome.Protocols.Contains(NpcProtocol.Version), "welcome.protocol lists version 1");
                    Expect(welcome.Personas.Count > 0, "the server has personas");
                    Expect(welcome.Emotions.SequenceEqual(NpcProtocol.Emotions), "emotion labels match");
                });
                string persona = welcome != null && welcome.Personas.Count > 0 ? welcome.Personas[0] : "blacksmith";
                string session = "integration:" + persona;

                Check("streamed say with an image", () =>
                {
                    var pieces = new List<NpcChunk>();
                    NpcReply finished = null;
                    Action<NpcReply> onFinished = r => finished = r;
                    client.LineFinished += onFinished;
                    var request = new NpcSayRequest
                    {
                        Persona = persona,
                        Session = session,
                        Text = "Good evening! Do you sell swords?",
                        Image = new NpcImage("rgb8", new byte[8 * 8 * 3], 8, 8),
                        Options = new NpcSayOptions { MaxTokens = 12, Seed = 7, Stream = true },
                    };
                    request.Context["time_of_day"] = "night";
                    NpcReply reply = Wait(client.SayAsync(request, c => { lock (pieces) pieces.Add(c); }));
                    client.LineFinished -= onFinished;
                    Expect(reply.RequestId == request.Id, "reply echoes the request id");
                    Expect(pieces.Count > 0, "at least one chunk arrived");
                    Expect(string.Concat(pieces.Select(c => c.Text)) == reply.Text, "chunks concatenate to the reply text");
                    Expect(pieces.Select(c => c.Seq).SequenceEqual(Enumerable.Range(0, pieces.Count).Select(i => (long)i)), "seq counts from 0");
                    Expect(NpcProtocol.Emotions.Contains(reply.Emotion), "emotion label is known: " + reply.Emotion);
                    Expect(reply.Intensity >= 0.0 && reply.Intensity <= 1.0, "intensity is in 0..1");
                    Expect(finished == reply || (finished != null && finished.RequestId == reply.RequestId), "LineFinished was raised");
                });

                Check("cancel", () =>
                {
                    var request = new NpcSayRequest
                    {
                        Persona = persona,
                        Session = session + ":cancel",
                        Text = "Tell me everything you know about the old war.",
                        Options = new NpcSayOptions { MaxTokens = 128, Stream = true },
                    };
                    Task<NpcReply> say = client.SayAsync(request);
                    bool found = Wait(client.CancelAsync(request.Id));
                    Expect(found, "the server still had the say when the cancel arrived");
                    try
                    {
                        say.Wait(WaitMs);
                        Expect(false, "the cancelled say should not complete with a reply");
                    }
                    catch (AggregateException)
                    {
                        Expect(say.IsCanceled, "the say ended as cancelled, got " + say.Status);
                    }
                });

                Check("error reply", () =>
                {
                    var request = new NpcSayRequest { Persona = "no-such-persona", Session = session, Text = "Hello?" };
                    ExpectFailure(client.SayAsync(request), NpcErrorCodes.UnknownPersona);
                    ExpectFailure(client.RequestAsync("dance", null), NpcErrorCodes.UnknownType);
                });

                Check("session save and restore", () =>
                {
                    Dictionary<string, object> saved = Wait(client.GetStateAsync(session));
                    Expect(NpcMessages.GetList(saved, "turns").Count > 0, "the streamed say is in the session history");
                    Wait(client.ResetAsync(session));
                    Expect(NpcMessages.GetList(Wait(client.GetStateAsync(session)), "turns").Count == 0, "reset forgets the history");
                    Wait(client.SetStateAsync(session, saved));
                    byte[] before = MsgPack.Encode(saved);
                    byte[] after = MsgPack.Encode(Wait(client.GetStateAsync(session)));
                    Expect(before.SequenceEqual(after), "state.get after state.set gives back the same map");
                });

                Check("reconnect after the server restarts", () =>
                {
                    int connectsBefore = Volatile.Read(ref connects);
                    Console.WriteLine("RESTART");
                    Console.Out.Flush();
                    string answer = Console.ReadLine();
                    Expect(answer == "RESTARTED", "the harness restarted the server (said '" + answer + "')");
                    Expect(disconnected.WaitOne(WaitMs), "Disconnected was raised");
                    NpcWelcome again = Wait(client.HelloAsync());
                    Expect(again.Personas.Count > 0, "hello works on the new server");
                    Expect(Volatile.Read(ref connects) > connectsBefore, "Connected was raised again");
                });
            }
            Console.WriteLine("{0} passed, {1} failed", _passed, _failed);
            return _failed == 0 ? 0 : 1;
        }

        private static void Check(string name, Action body)
        {
            try
            {
                body();
                _passed++;
                Console.WriteLine("ok - " + name);
            }
            catch (Exception exc)
            {
                _failed++;
                Console.WriteLine("FAIL - " + name + ": " + exc.GetBaseException().Message);
                Console.Error.WriteLine(exc);
            }
        }

        private static void Expect(bool condition, string what)
        {
            if (!condition) throw new Exception("expected: " + what);
        }

        private static T Wait<T>(Task<T> task)
        {
            if (!task.Wait(WaitMs)) throw new TimeoutException("no answer within " + WaitMs + " ms");
            return task.Result;
        }

        private static void Wait(Task task)
        {
            if (!task.Wait(WaitMs)) throw new TimeoutException("no answer within " + WaitMs + " ms");
        }

        private static void ExpectFailure(Task task, string code)
        {
            try
            {
                task.Wait(WaitMs);
            }
            catch (AggregateException exc)
            {
                var failure = exc.GetBaseException() as NpcRequestException;
                Expect(failure != null && failure.Code == code, "error code " + code + ", got " + exc.GetBaseException().Message);
                return;
            }
            Expect(false, "the request should have failed with " + code);
        }
    }
}
