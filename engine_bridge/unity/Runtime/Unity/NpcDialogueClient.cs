// The Unity component that owns one NpcClient: configured in the Inspector, connected while enabled, and
// raising its events on the main thread (Update drains what the I/O thread queued).
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using UnityEngine;
using UnityEngine.Events;

namespace NpcDialogue
{
    /// <summary>
    /// Connects to the NPC runtime server while enabled. Put one in a scene (GameObject > NPC Dialogue > Client)
    /// and point every <see cref="NpcSpeaker"/> at it. Events fire on the main thread; awaiting the Task
    /// methods from the main thread resumes on the main thread.
    /// </summary>
    [DisallowMultipleComponent]
    [AddComponentMenu("NPC Dialogue/NPC Dialogue Client")]
    public sealed class NpcDialogueClient : MonoBehaviour
    {
        [Tooltip("The server's endpoint, tcp://host:port")]
        [SerializeField] private string endpoint = NpcProtocol.DefaultEndpoint;

        [Tooltip("Routing identity; keep it fixed so replies follow a reconnect. Empty picks a random one per run.")]
        [SerializeField] private string identity = "";

        [Tooltip("How long one connection attempt may take, in milliseconds")]
        [SerializeField] private int connectTimeoutMs = 2000;

        [Tooltip("How long a request may wait for its answer, in milliseconds")]
        [SerializeField] private int requestTimeoutMs = 30000;

        [Tooltip("Longest wait between reconnect attempts, in milliseconds")]
        [SerializeField] private int reconnectMaxMs = 5000;

        [Tooltip("Log connects, drops and failures to the Console")]
        [SerializeField] private bool logToConsole = true;

        [SerializeField] private UnityEvent onConnected = new UnityEvent();
        [SerializeField] private NpcTextEvent onDisconnected = new NpcTextEvent();

        private readonly MainThreadQueue _mainThread = new MainThreadQueue();
        private NpcClient _client;

        /// <summary>A connection is up (main thread).</summary>
        public event Action Connected;

        /// <summary>The connection dropped, with the reason (main thread); the client reconnects by itself.</summary>
        public event Action<string> Disconnected;

        /// <summary>A streamed piece of any NPC line (main thread).</summary>
        public event Action<NpcChunk> LineChunk;

        /// <summary>Any NPC line finished (main thread).</summary>
        public event Action<NpcReply> LineFinished;

        /// <summary>Any request failed (main thread).</summary>
        public event Action<NpcRequestException> RequestFailed;

        /// <summary>The server endpoint; set it before the component is enabled.</summary>
        public string Endpoint
        {
            get { return endpoint; }
            set { endpoint = value; }
        }

        /// <summary>True while connected.</summary>
        public bool IsConnected { get { return _client != null && _client.IsConnected; } }

        /// <summary>The core client (null while disabled); its own events fire on the I/O thread.</summary>
        public NpcClient Client { get { return _client; } }

        /// <summary>Asks the server for its personas, emotions and limits.</summary>
        public Task<NpcWelcome> HelloAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return Running().HelloAsync(cancellationToken);
        }

        /// <summary>Sends a say; <paramref name="onChunk"/> runs on the main thread for each streamed piece.</summary>
        public Task<NpcReply> SayAsync(NpcSayRequest request, Action<NpcChunk> onChunk = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            Action<NpcChunk> relay = null;
            if (onChunk != null) relay = chunk => _mainThread.Post(() => onChunk(chunk));
            return Running().SayAsync(request, relay, cancellationToken);
        }

        /// <summary>Cancels a say by its request id.</summary>
        public Task<bool> CancelAsync(string sayId, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Running().CancelAsync(sayId, cancellationToken);
        }

        /// <summary>Forgets a session's history.</summary>
        public Task<bool> ResetAsync(string session, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Running().ResetAsync(session, cancellationToken);
        }

        /// <summary>A session's state, to store in a save game.</summary>
        public Task<Dictionary<string, object>> GetStateAsync(string session, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Running().GetStateAsync(session, cancellationToken);
        }

        /// <summary>Restores a session's state from a save game.</summary>
        public Task SetStateAsync(string session, Dictionary<string, object> state, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Running().SetStateAsync(session, state, cancellationToken);
        }

        /// <summary>A session's state as msgpack bytes, ready to write into a save file.</summary>
        public async Task<byte[]> SaveSessionAsync(string session, CancellationToken cancellationToken = default(CancellationToken))
        {
            Dictionary<string, object> state = await GetStateAsync(session, cancellationToken);
            return MsgPack.Encode(state);
        }

        /// <summary>Restores a session from bytes written by <see cref="SaveSessionAsync"/>.</summary>
        public Task RestoreSessionAsync(string session, byte[] saved, CancellationToken cancellationToken = default(CancellationToken))
        {
            var state = MsgPack.Decode(saved) as Dictionary<string, object>;
            if (state == null) throw new ArgumentException("saved session bytes do not hold a state map");
            return SetStateAsync(session, state, cancellationToken);
        }

        private void OnEnable()
        {
            var options = new NpcClientOptions
            {
                Endpoint = endpoint,
                Identity = string.IsNullOrEmpty(identity) ? null : identity,
                ConnectTimeoutMs = connectTimeoutMs,
                RequestTimeoutMs = requestTimeoutMs,
                ReconnectMaxMs = reconnectMaxMs,
            };
            if (logToConsole) options.Log = line => _mainThread.Post(() => Debug.Log("[NpcDialogue] " + line, this));
            try
            {
                _client = new NpcClient(options);
            }
            catch (ArgumentException exc)
            {
                Debug.LogError("[NpcDialogue] bad settings: " + exc.Message, this);
                enabled = false;
                return;
            }
            _client.Connected += () => _mainThread.Post(RaiseConnected);
            _client.Disconnected += reason => _mainThread.Post(() => RaiseDisconnected(reason));
            _client.LineChunk += chunk => _mainThread.Post(() => Raise(LineChunk, chunk));
            _client.LineFinished += reply => _mainThread.Post(() => Raise(LineFinished, reply));
            _client.RequestFailed += failure => _mainThread.Post(() => RaiseFailed(failure));
            _client.Start();
        }

        private void OnDisable()
        {
            if (_client == null) return;
            _client.Dispose();
            _client = null;
            _mainThread.Drain(LogException);
        }

        private void Update()
        {
            _mainThread.Drain(LogException);
        }

        private NpcClient Running()
        {
            if (_client == null) throw new InvalidOperationException("NpcDialogueClient is disabled; enable it before sending requests");
            return _client;
        }

        private void RaiseConnected()
        {
            if (Connected != null) Connected();
            onConnected.Invoke();
        }

        private void RaiseDisconnected(string reason)
        {
            if (Disconnected != null) Disconnected(reason);
            onDisconnected.Invoke(reason);
        }

        private void RaiseFailed(NpcRequestException failure)
        {
            if (logToConsole) Debug.LogWarning("[NpcDialogue] request " + failure.RequestId + " failed: " + failure.Message, this);
            if (RequestFailed != null) RequestFailed(failure);
        }

        private static void Raise<T>(Action<T> handler, T value)
        {
            if (handler != null) handler(value);
        }

        private void LogException(Exception exc)
        {
            Debug.LogException(exc, this);
        }
    }

    /// <summary>A UnityEvent with one string (a line of text, or a reason).</summary>
    [Serializable]
    public sealed class NpcTextEvent : UnityEvent<string>
    {
    }

    /// <summary>A UnityEvent with an emotion label and its intensity 0..1.</summary>
    [Serializable]
    public sealed class NpcEmotionEvent : UnityEvent<string, float>
    {
    }
}
