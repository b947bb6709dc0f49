// The NPC dialogue client: one background I/O thread owns a ZmtpDealer, reconnects with backoff, sends
// heartbeats, matches replies to requests by id and completes Tasks; events fire on that thread (the Unity
// layer moves them to the main thread). Plain C# 7.2, no UnityEngine.
using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace NpcDialogue
{
    /// <summary>
    /// Talks protocol v1 to an NPC runtime server. Call <see cref="Start"/>, then await the request methods.
    /// Requests made while the server is unreachable wait (up to their timeout) and go out on connect.
    /// Events and Task completions happen on the client's I/O thread.
    /// </summary>
    public sealed class NpcClient : IDisposable
    {
        private const int BusyPollMs = 2;
        private const int IdleWaitMs = 50;

        private readonly NpcClientOptions _options;
        private readonly byte[] _identity;
        private readonly object _lock = new object();
        private readonly Dictionary<string, Pending> _pending = new Dictionary<string, Pending>();
        private readonly Queue<Pending> _outbox = new Queue<Pending>();
        private readonly AutoResetEvent _wake = new AutoResetEvent(false);
        private Thread _thread;
        private ZmtpDealer _dealer;
        private volatile bool _stopping;
        private long _nextId;
        private int _backoffMs;
        private long _nextAttemptMs;
        private long _lastPingMs;
        private bool _everConnected;

        /// <summary>Creates a client; validates <paramref name="options"/> (ArgumentException on bad values).</summary>
        public NpcClient(NpcClientOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            options.Validate();
            _options = options;
            string identity = options.Identity ?? ("npc-" + Guid.NewGuid().ToString("N"));
            _identity = Encoding.UTF8.GetBytes(identity);
        }

        /// <summary>Raised on the I/O thread when a connection (TCP + ZMTP handshake) is up.</summary>
        public event Action Connected;

        /// <summary>Raised on the I/O thread when an established connection drops, with the reason.</summary>
        public event Action<string> Disconnected;

        /// <summary>Raised on the I/O thread for every streamed piece of any say.</summary>
        public event Action<NpcChunk> LineChunk;

        /// <summary>Raised on the I/O thread when any say finishes.</summary>
        public event Action<NpcReply> LineFinished;

        /// <summary>Raised on the I/O thread when any request fails (server error, timeout, disconnect).</summary>
        public event Action<NpcRequestException> RequestFailed;

        /// <summary>True while a connection is up.</summary>
        public bool IsConnected { get { return _dealer != null; } }

        /// <summary>The routing identity this client sends on every connection.</summary>
        public string Identity { get { return Encoding.UTF8.GetString(_identity); } }

        /// <summary>The options this client runs with.</summary>
        public NpcClientOptions Options { get { return _options; } }

        /// <summary>Starts the I/O thread (connects in the background). Calling it again does nothing.</summary>
        public void Start()
        {
            lock (_lock)
            {
                if (_stopping) throw new ObjectDisposedException("NpcClient");
                if (_thread != null) return;
                _thread = new Thread(Run) { IsBackground = true, Name = "NpcClient I/O" };
                _thread.Start();
            }
        }

        /// <summary>Asks for the server's description (personas, emotions, limits).</summary>
        public async Task<NpcWelcome> HelloAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            Dictionary<string, object> reply = await RequestAsync(NpcProtocol.Hello, null, cancellationToken).ConfigureAwait(false);
            return NpcMessages.ParseWelcome(reply);
        }

        /// <summary>
        /// Sends a say and completes with the finished line. <paramref name="onChunk"/> (I/O thread) gets each
        /// streamed piece. Cancelling the token sends <c>cancel</c>; the Task then ends as cancelled once the
        /// server confirms (or at once if the say had not gone out yet).
        /// </summary>
        public Task<NpcReply> SayAsync(NpcSayRequest request, Action<NpcChunk> onChunk = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            if (request == null) throw new ArgumentNullException("request");
            string id = string.IsNullOrEmpty(request.Id) ? NextId(NpcProtocol.Say) : request.Id;
            Dictionary<string, object> message = request.ToMessage(id);
            request.Id = id;
            var completion = new TaskCompletionSource<NpcReply>(TaskCreationOptions.RunContinuationsAsynchronously);
            var pending = new Pending(id, NpcProtocol.Say, MsgPack.Encode(message), Deadline());
            pending.OnChunk = m =>
            {
                NpcChunk chunk = NpcMessages.ParseChunk(m);
                Raise(LineChunk, chunk);
                if (onChunk != null) onChunk(chunk);
            };
            pending.OnFinal = m =>
            {
                NpcReply reply = NpcMessages.ParseReply(m);
                Raise(LineFinished, reply);
                completion.TrySetResult(reply);
            };
            pending.OnError = exc =>
            {
                if (exc.Code == NpcErrorCodes.Cancelled && pending.CancelRequested)
                {
                    completion.TrySetCanceled();
                    return;
                }
                Raise(RequestFailed, exc);
                completion.TrySetException(exc);
            };
            Submit(pending, cancellationToken, () => SendCancel(id));
            return completion.Task;
        }

        /// <summary>Cancels the say with id <paramref name="sayId"/>; completes with whether the server still had it.</summary>
        public async Task<bool> CancelAsync(string sayId, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (string.IsNullOrEmpty(sayId)) throw new ArgumentException("sayId is required");
            MarkCancelRequested(sayId);
            var fields = new Dictionary<string, object> { { "target", sayId } };
            Dictionary<string, object> reply = await RequestAsync(NpcProtocol.Cancel, fields, cancellationToken).ConfigureAwait(false);
            object found;
            return reply.TryGetValue("found", out found) && found is bool && (bool)found;
        }

        /// <summary>The ids of says still waiting for their reply (to pass to <see cref="CancelAsync"/>).</summary>
        public List<string> PendingSayIds()
        {
            var ids = new List<string>();
            lock (_lock)
            {
                foreach (Pending p in _pending.Values) if (p.Type == NpcProtocol.Say) ids.Add(p.Id);
            }
            return ids;
        }

        /// <summary>Forgets a session's history on the server; completes with whether it existed.</summary>
        public async Task<bool> ResetAsync(string session, CancellationToken cancellationToken = default(CancellationToken))
        {
            Dictionary<string, object> reply = await RequestAsync(NpcProtocol.Reset, SessionField(session), cancellationToken).ConfigureAwait(false);
            object existed;
            return reply.TryGetValue("existed", out existed) && existed is bool && (bool)existed;
        }

        /// <summary>The persona cards the server has (each a map with id, name, role, ...).</summary>
        public async Task<List<Dictionary<string, object>>> PersonasAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            Dictionary<string, object> reply = await RequestAsync(NpcProtocol.Personas, null, cancellationToken).ConfigureAwait(false);
            var cards = new List<Dictionary<string, object>>();
            foreach (object card in NpcMessages.GetList(reply, "personas"))
            {
                var map = card as Dictionary<string, object>;
                if (map != null) cards.Add(map);
            }
            return cards;
        }

        /// <summary>A session's state, to keep in a save game and give back to <see cref="SetStateAsync"/>.</summary>
        public async Task<Dictionary<string, object>> GetStateAsync(string session, CancellationToken cancellationToken = default(CancellationToken))
        {
            Dictionary<string, object> reply = await RequestAsync(NpcProtocol.StateGet, SessionField(session), cancellationToken).ConfigureAwait(false);
            return NpcMessages.GetMap(reply, "state") ?? new Dictionary<string, object>();
        }

        /// <summary>Restores a session's state saved with <see cref="GetStateAsync"/>.</summary>
        public Task SetStateAsync(string session, Dictionary<string, object> state, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (state == null) throw new ArgumentNullException("state");
            Dictionary<string, object> fields = SessionField(session);
            fields["state"] = state;
            return RequestAsync(NpcProtocol.StateSet, fields, cancellationToken);
        }

        /// <summary>
        /// Sends any request type with extra <paramref name="fields"/> and completes with its final reply message;
        /// a server <c>error</c> or a client-side failure throws <see cref="NpcRequestException"/>.
        /// </summary>
        public Task<Dictionary<string, object>> RequestAsync(string type, IDictionary<string, object> fields,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            if (string.IsNullOrEmpty(type)) throw new ArgumentException("type is required");
            string id = NextId(type);
            Dictionary<string, object> message = NpcMessages.Request(id, type);
            if (fields != null)
            {
                foreach (KeyValuePair<string, object> pair in fields) message[pair.Key] = pair.Value;
            }
            var completion = new TaskCompletionSource<Dictionary<string, object>>(TaskCreationOptions.RunContinuationsAsynchronously);
            var pending = new Pending(id, type, MsgPack.Encode(message), Deadline());
            pending.OnFinal = m => completion.TrySetResult(m);
            pending.OnError = exc =>
            {
                Raise(RequestFailed, exc);
                completion.TrySetException(exc);
            };
            Submit(pending, cancellationToken, null);
            return completion.Task;
        }

        /// <summary>Stops the I/O thread, closes the connection and fails whatever is still waiting.</summary>
        public void Dispose()
        {
            Thread thread;
            lock (_lock)
            {
                if (_stopping) return;
                _stopping = true;
                thread = _thread;
            }
            _wake.Set();
            bool onIoThread = thread == Thread.CurrentThread; // disposed from one of our own event handlers
            if (thread != null && !onIoThread && !thread.Join(_options.ConnectTimeoutMs + 2000))
            {
                LogLine("I/O thread did not stop in time");
            }
            ZmtpDealer dealer = _dealer;
            _dealer = null;
            if (dealer != null) dealer.Dispose();
            FailAll(NpcErrorCodes.Disconnected, "the client was disposed", true);
        }

        // ------------------------------------------------------------------------------------------ requests

        private sealed class Pending
        {
            public readonly string Id;
            public readonly string Type;
            public readonly string FinalType;
            public readonly byte[] Payload;
            public readonly long DeadlineMs;
            public bool Sent;
            public bool SawConnection;
            public bool CancelRequested;
            public Action<Dictionary<string, object>> OnChunk;
            public Action<Dictionary<string, object>> OnFinal;
            public Action<NpcRequestException> OnError;
            public CancellationTokenRegistration Registration;

            public Pending(string id, string type, byte[] payload, long deadlineMs)
            {
                Id = id;
                Type = type;
                string final;
                FinalType = NpcProtocol.FinalReplyType.TryGetValue(type, out final) ? final : type + ".ok";
                Payload = payload;
                DeadlineMs = deadlineMs;
            }
        }

        private string NextId(string type)
        {
            return type + "-" + Interlocked.Increment(ref _nextId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        private long Deadline()
        {
            return ZmtpDealer.MonotonicMs() + _options.RequestTimeoutMs;
        }

        private static Dictionary<string, object> SessionField(string session)
        {
            if (string.IsNullOrEmpty(session)) throw new ArgumentException("session is required");
            return new Dictionary<string, object> { { "session", session } };
        }

        private void Submit(Pending pending, CancellationToken token, Action onCancelAfterSend)
        {
            lock (_lock)
            {
                if (_stopping) throw new ObjectDisposedException("NpcClient");
                if (_pending.ContainsKey(pending.Id))
                {
                    throw new ArgumentException("request id '" + pending.Id + "' is still waiting for its answer");
                }
                _pending[pending.Id] = pending;
                _outbox.Enqueue(pending);
                pending.SawConnection = _dealer != null;
            }
            if (token.CanBeCanceled)
            {
                pending.Registration = token.Register(() => OnTokenCancelled(pending, onCancelAfterSend));
            }
            _wake.Set();
        }

        private void OnTokenCancelled(Pending pending, Action onCancelAfterSend)
        {
            bool sent;
            lock (_lock)
            {
                if (!_pending.ContainsKey(pending.Id)) return;
                pending.CancelRequested = true;
                sent = pending.Sent;
                if (!sent || onCancelAfterSend == null) _pending.Remove(pending.Id);
            }
            if (sent && onCancelAfterSend != null)
            {
                onCancelAfterSend();
                return;
            }
            // Not on the wire yet (or nothing to tell the server): end it here; the outbox skips removed requests.
            pending.OnError(new NpcRequestException(NpcErrorCodes.Cancelled, "cancelled before it was answered", pending.Id));
        }

        private void MarkCancelRequested(string sayId)
        {
            lock (_lock)
            {
                Pending target;
                if (_pending.TryGetValue(sayId, out target)) target.CancelRequested = true;
            }
        }

        private void SendCancel(string sayId)
        {
            Task<bool> cancel = CancelAsync(sayId);
            cancel.ContinueWith(t => LogLine("cancel of " + sayId + " failed: " + t.Exception.GetBaseException().Message),
                TaskContinuationOptions.OnlyOnFaulted);
        }

        // ------------------------------------------------------------------------------------------ I/O thread

        private void Run()
        {
            var messages = new List<byte[][]>();
            while (!_stopping)
            {
                ZmtpDealer dealer = _dealer;
                if (dealer == null)
                {
                    TryConnect();
                    ExpireRequests();
                    continue;
                }
                try
                {
                    FlushOutbox(dealer);
                    bool busy;
                    lock (_lock) busy = _pending.Count > 0;
                    if (busy)
                    {
                        dealer.Receive(BusyPollMs, messages);
                    }
                    else
                    {
                        _wake.WaitOne(IdleWaitMs);
                        dealer.Receive(0, messages);
                    }
                    foreach (byte[][] parts in messages) Dispatch(parts);
                    messages.Clear();
                    Heartbeat(dealer);
                }
                catch (ZmtpException exc)
                {
                    messages.Clear();
                    Drop(dealer, exc.Message);
                }
                ExpireRequests();
            }
        }

        private void TryConnect()
        {
            long now = ZmtpDealer.MonotonicMs();
            if (now < _nextAttemptMs)
            {
                _wake.WaitOne((int)Math.Min(_nextAttemptMs - now, IdleWaitMs));
                return;
            }
            try
            {
                ZmtpDealer dealer = ZmtpDealer.Connect(_options.Host, _options.Port, _identity, _options.ConnectTimeoutMs, _options.MaxFrameBytes);
                lock (_lock)
                {
                    if (_stopping)
                    {
                        dealer.Dispose();
                        return;
                    }
                    _dealer = dealer;
                    foreach (Pending p in _pending.Values) p.SawConnection = true;
                }
                _backoffMs = 0;
                _everConnected = true;
                _lastPingMs = ZmtpDealer.MonotonicMs();
                LogLine("connected to " + _options.Endpoint + " as " + Identity);
                RaiseConnected();
            }
            catch (ZmtpException exc)
            {
                _backoffMs = _backoffMs == 0 ? _options.ReconnectMinMs : Math.Min(_backoffMs * 2, _options.ReconnectMaxMs);
                _nextAttemptMs = ZmtpDealer.MonotonicMs() + _backoffMs;
                LogLine("cannot reach " + _options.Endpoint + " (" + exc.Message + "); next try in " + _backoffMs + " ms");
            }
        }

        private void FlushOutbox(ZmtpDealer dealer)
        {
            while (true)
            {
                Pending next;
                lock (_lock)
                {
                    if (_outbox.Count == 0) return;
                    next = _outbox.Dequeue();
                    if (!_pending.ContainsKey(next.Id)) continue; // cancelled or expired before it went out
                    // Marked before the bytes leave, so a cancel from now on goes to the server, and a send
                    // that breaks the connection fails the request as "disconnected".
                    next.Sent = true;
                }
                dealer.Send(next.Payload);
            }
        }

        private void Heartbeat(ZmtpDealer dealer)
        {
            if (_options.HeartbeatIntervalMs <= 0) return;
            long now = ZmtpDealer.MonotonicMs();
            long quietMs = now - dealer.LastReceivedMs;
            if (quietMs > _options.HeartbeatTimeoutMs)
            {
                throw new ZmtpException("no bytes from the server for " + quietMs + " ms");
            }
            if (quietMs >= _options.HeartbeatIntervalMs && now - _lastPingMs >= _options.HeartbeatIntervalMs)
            {
                _lastPingMs = now;
                // TTL 0: libzmq would otherwise drop us whenever we send nothing for a TTL while it streams.
                dealer.SendPing(0, new byte[0]);
            }
        }

        private void Dispatch(byte[][] parts)
        {
            byte[] payload = parts[parts.Length - 1];
            Dictionary<string, object> message;
            try
            {
                message = MsgPack.Decode(payload) as Dictionary<string, object>;
            }
            catch (MsgPackException exc)
            {
                LogLine("ignoring a reply that is not msgpack: " + exc.Message);
                return;
            }
            if (message == null)
            {
                LogLine("ignoring a reply that is not a map");
                return;
            }
            string id = NpcMessages.IdOf(message);
            string type = NpcMessages.GetString(message, "type", null);
            Pending pending;
            lock (_lock)
            {
                if (id == null || !_pending.TryGetValue(id, out pending))
                {
                    pending = null;
                }
                else if (type != NpcProtocol.Chunk)
                {
                    _pending.Remove(id);
                }
            }
            if (pending == null)
            {
                if (type == NpcProtocol.Error)
                {
                    var orphan = new NpcRequestException(NpcMessages.GetString(message, "code", NpcErrorCodes.Internal),
                        NpcMessages.GetString(message, "message", ""), id);
                    Raise(RequestFailed, orphan);
                }
                else
                {
                    LogLine("ignoring a '" + type + "' for unknown request id '" + id + "'");
                }
                return;
            }
            if (type == NpcProtocol.Chunk)
            {
                if (pending.OnChunk != null) Guard(() => pending.OnChunk(message));
                return;
            }
            pending.Registration.Dispose();
            if (type == NpcProtocol.Error)
            {
                var exc = new NpcRequestException(NpcMessages.GetString(message, "code", NpcErrorCodes.Internal),
                    NpcMessages.GetString(message, "message", ""), id);
                Guard(() => pending.OnError(exc));
            }
            else if (type == pending.FinalType)
            {
                Guard(() => pending.OnFinal(message));
            }
            else
            {
                var exc = new NpcRequestException(NpcErrorCodes.BadReply,
                    "expected '" + pending.FinalType + "', got '" + type + "'", id);
                Guard(() => pending.OnError(exc));
            }
        }

        private void Drop(ZmtpDealer dealer, string reason)
        {
            lock (_lock)
            {
                if (_dealer == dealer) _dealer = null;
            }
            dealer.Dispose();
            _nextAttemptMs = ZmtpDealer.MonotonicMs() + _options.ReconnectMinMs;
            _backoffMs = _options.ReconnectMinMs;
            LogLine("disconnected: " + reason);
            FailAll(NpcErrorCodes.Disconnected, "connection lost before the reply: " + reason, false);
            RaiseDisconnected(reason);
        }

        private void ExpireRequests()
        {
            long now = ZmtpDealer.MonotonicMs();
            var expired = new List<Pending>();
            lock (_lock)
            {
                foreach (Pending p in _pending.Values) if (p.DeadlineMs <= now) expired.Add(p);
                foreach (Pending p in expired) _pending.Remove(p.Id);
            }
            foreach (Pending p in expired)
            {
                p.Registration.Dispose();
                NpcRequestException exc = p.SawConnection
                    ? new NpcRequestException(NpcErrorCodes.Timeout, "no answer within " + _options.RequestTimeoutMs + " ms", p.Id)
                    : new NpcRequestException(NpcErrorCodes.Offline, "the server at " + _options.Endpoint + " was unreachable for "
                        + _options.RequestTimeoutMs + " ms" + (_everConnected ? "" : " (never connected)"), p.Id);
                Guard(() => p.OnError(exc));
            }
        }

        /// <summary>Fails sent requests (all of them when <paramref name="includeUnsent"/>); unsent ones wait for the next connection.</summary>
        private void FailAll(string code, string message, bool includeUnsent)
        {
            var failed = new List<Pending>();
            lock (_lock)
            {
                foreach (Pending p in _pending.Values) if (p.Sent || includeUnsent) failed.Add(p);
                foreach (Pending p in failed) _pending.Remove(p.Id);
            }
            foreach (Pending p in failed)
            {
                p.Registration.Dispose();
                var exc = new NpcRequestException(code, message, p.Id);
                Guard(() => p.OnError(exc));
            }
        }

        // ------------------------------------------------------------------------------------------ events

        private void RaiseConnected()
        {
            Action handler = Connected;
            if (handler != null) Guard(handler);
        }

        private void RaiseDisconnected(string reason)
        {
            Action<string> handler = Disconnected;
            if (handler != null) Guard(() => handler(reason));
        }

        private void Raise<T>(Action<T> handler, T value)
        {
            if (handler != null) Guard(() => handler(value));
        }

        /// <summary>Runs user code; an exception there is logged, never allowed to stop the I/O thread.</summary>
        private void Guard(Action action)
        {
            try
            {
                action();
            }
            catch (Exception exc)
            {
                LogLine("a handler threw: " + exc);
            }
        }

        private void LogLine(string line)
        {
            Action<string> log = _options.Log;
            if (log == null) return;
            try
            {
                log(line);
            }
            catch (Exception)
            {
                // A broken logger must not take the client down.
            }
        }
    }
}
