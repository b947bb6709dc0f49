// Settings of an NpcClient: where the server is, timeouts in milliseconds, reconnect backoff and heartbeat.
using System;
using System.Globalization;

namespace NpcDialogue
{
    /// <summary>Settings of an <see cref="NpcClient"/>; <see cref="Validate"/> throws ArgumentException on bad values.</summary>
    public sealed class NpcClientOptions
    {
        /// <summary>The server's ZeroMQ endpoint, "tcp://host:port".</summary>
        public string Endpoint = NpcProtocol.DefaultEndpoint;

        /// <summary>
        /// Routing identity sent in READY. Keep it fixed for one client so the server (which sets ROUTER_HANDOVER)
        /// routes replies to the new connection after a reconnect. Null picks a random one per client.
        /// </summary>
        public string Identity;

        /// <summary>How long one connection attempt (TCP and ZMTP handshake) may take.</summary>
        public int ConnectTimeoutMs = 2000;

        /// <summary>How long a request may wait for its final answer, queued time included.</summary>
        public int RequestTimeoutMs = 30000;

        /// <summary>First wait before reconnecting; doubles after every failed attempt.</summary>
        public int ReconnectMinMs = 250;

        /// <summary>Longest wait between reconnect attempts.</summary>
        public int ReconnectMaxMs = 5000;

        /// <summary>Send a ZMTP PING after this long without traffic (0 turns heartbeats off).</summary>
        public int HeartbeatIntervalMs = 2000;

        /// <summary>Drop the connection after this long without any bytes from the server.</summary>
        public int HeartbeatTimeoutMs = 6000;

        /// <summary>Largest frame accepted from the server.</summary>
        public long MaxFrameBytes = 16L * 1024 * 1024;

        /// <summary>Receives one line per notable event (connects, drops, ignored messages); may be null.</summary>
        public Action<string> Log;

        /// <summary>The host part of <see cref="Endpoint"/> (valid after <see cref="Validate"/>).</summary>
        public string Host { get; private set; }

        /// <summary>The port part of <see cref="Endpoint"/> (valid after <see cref="Validate"/>).</summary>
        public int Port { get; private set; }

        /// <summary>Checks every value and parses the endpoint; throws ArgumentException naming the bad one.</summary>
        public void Validate()
        {
            const string prefix = "tcp://";
            if (Endpoint == null || !Endpoint.StartsWith(prefix, StringComparison.Ordinal))
            {
                throw new ArgumentException("Endpoint must look like tcp://host:port, got '" + Endpoint + "'");
            }
            string rest = Endpoint.Substring(prefix.Length);
            int colon = rest.LastIndexOf(':');
            int port;
            if (colon <= 0 || !int.TryParse(rest.Substring(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port)
                || port < 1 || port > 65535)
            {
                throw new ArgumentException("Endpoint must look like tcp://host:port, got '" + Endpoint + "'");
            }
            Host = rest.Substring(0, colon).Trim('[', ']');
            Port = port;
            Positive("ConnectTimeoutMs", ConnectTimeoutMs);
            Positive("RequestTimeoutMs", RequestTimeoutMs);
            Positive("ReconnectMinMs", ReconnectMinMs);
            Positive("HeartbeatTimeoutMs", HeartbeatTimeoutMs);
            if (ReconnectMaxMs < ReconnectMinMs) throw new ArgumentException("ReconnectMaxMs must be at least ReconnectMinMs");
            if (HeartbeatIntervalMs < 0) throw new ArgumentException("HeartbeatIntervalMs must not be negative");
            if (HeartbeatIntervalMs > 0 && HeartbeatTimeoutMs <= HeartbeatIntervalMs)
            {
                throw new ArgumentException("HeartbeatTimeoutMs must be longer than HeartbeatIntervalMs");
            }
            if (MaxFrameBytes <= 0 || MaxFrameBytes > int.MaxValue / 2) throw new ArgumentException("MaxFrameBytes is out of range");
            if (Identity != null && (Identity.Length == 0 || Identity.Length > 255 || Identity[0] == '\0'))
            {
                throw new ArgumentException("Identity must be 1..255 characters and not start with a zero character");
            }
        }

        private static void Positive(string name, int value)
        {
            if (value <= 0) throw new ArgumentException(name + " must be positive, got " + value);
        }
    }
}
