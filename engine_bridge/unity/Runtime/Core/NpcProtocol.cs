// Protocol v1 names for C#: version, message types, error codes and emotion labels, written once here and
// held to the Python server by the golden fixtures (engine_bridge/fixtures) that the tests decode.
using System;
using System.Collections.Generic;

namespace NpcDialogue
{
    /// <summary>Protocol v1 constants. The contract is docs/protocol.md in the runtime's repository.</summary>
    public static class NpcProtocol
    {
        /// <summary>The protocol version every message carries in <c>v</c>.</summary>
        public const int Version = 1;

        /// <summary>The endpoint the server binds by default.</summary>
        public const string DefaultEndpoint = "tcp://127.0.0.1:5555";

        /// <summary>Request: ask for the server's description; answered by <c>welcome</c>.</summary>
        public const string Hello = "hello";
        /// <summary>Request: an NPC line; answered by <c>chunk</c>* then <c>reply</c>.</summary>
        public const string Say = "say";
        /// <summary>Request: stop a <c>say</c>; answered by <c>cancel.ok</c>, the say ends with error <c>cancelled</c>.</summary>
        public const string Cancel = "cancel";
        /// <summary>Request: forget a session's history; answered by <c>reset.ok</c>.</summary>
        public const string Reset = "reset";
        /// <summary>Request: list the persona cards; answered by <c>personas.ok</c>.</summary>
        public const string Personas = "personas";
        /// <summary>Request: a session's saved state; answered by <c>state.get.ok</c>.</summary>
        public const string StateGet = "state.get";
        /// <summary>Request: restore a session's state; answered by <c>state.set.ok</c>.</summary>
        public const string StateSet = "state.set";

        /// <summary>Reply to <c>hello</c>.</summary>
        public const string Welcome = "welcome";
        /// <summary>A streamed piece of a <c>say</c> reply.</summary>
        public const string Chunk = "chunk";
        /// <summary>The final reply to a <c>say</c>.</summary>
        public const string Reply = "reply";
        /// <summary>A failed request.</summary>
        public const string Error = "error";

        /// <summary>The reply type a successful request of each type ends with.</summary>
        public static readonly IDictionary<string, string> FinalReplyType = new Dictionary<string, string>
        {
            { Hello, Welcome },
            { Say, Reply },
            { Cancel, "cancel.ok" },
            { Reset, "reset.ok" },
            { Personas, "personas.ok" },
            { StateGet, "state.get.ok" },
            { StateSet, "state.set.ok" },
        };

        /// <summary>The image formats a <c>say</c> may attach.</summary>
        public static readonly string[] ImageFormats = { "png", "jpeg", "rgb8" };

        /// <summary>Ekman's six and neutral, in the order the server sends scores.</summary>
        public static readonly string[] Emotions = { "anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral" };
    }

    /// <summary>Error codes: the server's (protocol v1) and three the client raises itself.</summary>
    public static class NpcErrorCodes
    {
        /// <summary>Not msgpack, not a map, or keys that are not strings.</summary>
        public const string BadMessage = "bad_message";
        /// <summary><c>v</c> missing or not a version the server speaks.</summary>
        public const string UnsupportedVersion = "unsupported_version";
        /// <summary><c>type</c> missing or unknown.</summary>
        public const string UnknownType = "unknown_type";
        /// <summary>A field is missing or has the wrong type or value; the message names it.</summary>
        public const string InvalidField = "invalid_field";
        /// <summary>The persona is not one the server has.</summary>
        public const string UnknownPersona = "unknown_persona";
        /// <summary>Message, text, image or context over its limit.</summary>
        public const string TooLarge = "too_large";
        /// <summary>The server's queue is full; retry later.</summary>
        public const string Overloaded = "overloaded";
        /// <summary>The say was cancelled.</summary>
        public const string Cancelled = "cancelled";
        /// <summary>No reply before the deadline (the server's, or the client's request timeout).</summary>
        public const string Timeout = "timeout";
        /// <summary>A server-side failure; the server keeps serving.</summary>
        public const string Internal = "internal";

        /// <summary>Client only: the connection dropped while the request was in flight.</summary>
        public const string Disconnected = "disconnected";
        /// <summary>Client only: the request timed out and the server was never reachable meanwhile.</summary>
        public const string Offline = "offline";
        /// <summary>Client only: the server's answer could not be read.</summary>
        public const string BadReply = "bad_reply";

        /// <summary>The codes a server may send.</summary>
        public static readonly string[] ServerCodes =
        {
            BadMessage, UnsupportedVersion, UnknownType, InvalidField, UnknownPersona,
            TooLarge, Overloaded, Cancelled, Timeout, Internal,
        };
    }

    /// <summary>A request ended with an error: the server's <c>error</c> message or a client-side failure.</summary>
    public sealed class NpcRequestException : Exception
    {
        /// <summary>Creates the exception.</summary>
        public NpcRequestException(string code, string message, string requestId) : base(code + ": " + message)
        {
            Code = code;
            ErrorMessage = message;
            RequestId = requestId;
        }

        /// <summary>One of <see cref="NpcErrorCodes"/>.</summary>
        public string Code { get; private set; }

        /// <summary>What went wrong, in words.</summary>
        public string ErrorMessage { get; private set; }

        /// <summary>The id of the failed request (null when the server could not read it).</summary>
        public string RequestId { get; private set; }
    }
}
