// Typed views of protocol v1 messages for C# callers: what a say sends (request, image, options) and what
// comes back (chunk, reply with emotion, welcome). Each turns into or out of the msgpack map the wire carries.
using System;
using System.Collections.Generic;

namespace NpcDialogue
{
    /// <summary>A screenshot attached to a say: encoded PNG/JPEG, or raw RGB (3 bytes a pixel, rows top to bottom).</summary>
    public sealed class NpcImage
    {
        /// <summary>Creates an image; <paramref name="format"/> is "png", "jpeg" or "rgb8".</summary>
        public NpcImage(string format, byte[] data, int width, int height)
        {
            if (Array.IndexOf(NpcProtocol.ImageFormats, format) < 0) throw new ArgumentException("image format must be png, jpeg or rgb8");
            if (data == null || data.Length == 0) throw new ArgumentException("image data must not be empty");
            if (width < 0 || height < 0) throw new ArgumentException("image width and height must not be negative");
            if (format == "rgb8" && (long)width * height * 3 != data.Length)
            {
                throw new ArgumentException("rgb8 data must be width * height * 3 bytes");
            }
            Format = format;
            Data = data;
            Width = width;
            Height = height;
        }

        /// <summary>"png", "jpeg" or "rgb8".</summary>
        public string Format { get; private set; }
        /// <summary>The encoded bytes.</summary>
        public byte[] Data { get; private set; }
        /// <summary>Width in pixels (0 = unknown, allowed for png/jpeg).</summary>
        public int Width { get; private set; }
        /// <summary>Height in pixels (0 = unknown, allowed for png/jpeg).</summary>
        public int Height { get; private set; }

        internal Dictionary<string, object> ToMap()
        {
            var map = new Dictionary<string, object> { { "format", Format }, { "data", Data } };
            if (Width > 0) map["width"] = (long)Width;
            if (Height > 0) map["height"] = (long)Height;
            return map;
        }
    }

    /// <summary>Sampling and delivery options of one say; null leaves the server's default.</summary>
    public sealed class NpcSayOptions
    {
        /// <summary>Most tokens in the reply.</summary>
        public int? MaxTokens;
        /// <summary>Sampling temperature (0 = greedy).</summary>
        public double? Temperature;
        /// <summary>Nucleus sampling mass, in (0, 1].</summary>
        public double? TopP;
        /// <summary>Sample from the k most likely tokens (0 = off).</summary>
        public int? TopK;
        /// <summary>Seed for a repeatable reply.</summary>
        public long? Seed;
        /// <summary>Stream <c>chunk</c> messages before the reply (default true).</summary>
        public bool Stream = true;
        /// <summary>The server's own deadline for this say, in milliseconds.</summary>
        public int? TimeoutMs;

        internal Dictionary<string, object> ToMap()
        {
            var map = new Dictionary<string, object>();
            if (MaxTokens.HasValue) map["max_tokens"] = (long)MaxTokens.Value;
            if (Temperature.HasValue) map["temperature"] = Temperature.Value;
            if (TopP.HasValue) map["top_p"] = TopP.Value;
            if (TopK.HasValue) map["top_k"] = (long)TopK.Value;
            if (Seed.HasValue) map["seed"] = Seed.Value;
            map["stream"] = Stream;
            if (TimeoutMs.HasValue) map["timeout_ms"] = (long)TimeoutMs.Value;
            return map;
        }
    }

    /// <summary>What the player said to which NPC, with what the NPC sees and knows.</summary>
    public sealed class NpcSayRequest
    {
        /// <summary>
        /// The request id. Leave it null and <see cref="NpcClient.SayAsync"/> fills in a fresh one before it
        /// returns, so it can be passed to <see cref="NpcClient.CancelAsync"/>. Use a new request (or set Id back
        /// to null) for the next say.
        /// </summary>
        public string Id;
        /// <summary>The persona id (e.g. "blacksmith").</summary>
        public string Persona;
        /// <summary>The conversation/session id (e.g. "save1:blacksmith"); history is kept per session.</summary>
        public string Session;
        /// <summary>What the player said.</summary>
        public string Text;
        /// <summary>Optional screenshot of what the NPC sees.</summary>
        public NpcImage Image;
        /// <summary>Optional scene facts, e.g. time_of_day = night.</summary>
        public Dictionary<string, string> Context = new Dictionary<string, string>();
        /// <summary>Optional sampling options.</summary>
        public NpcSayOptions Options = new NpcSayOptions();

        /// <summary>The say message for request id <paramref name="id"/>; throws ArgumentException when a field is missing.</summary>
        public Dictionary<string, object> ToMessage(string id)
        {
            if (string.IsNullOrEmpty(Persona)) throw new ArgumentException("Persona is required");
            if (string.IsNullOrEmpty(Session)) throw new ArgumentException("Session is required");
            if (string.IsNullOrEmpty(Text)) throw new ArgumentException("Text is required");
            var message = NpcMessages.Request(id, NpcProtocol.Say);
            message["persona"] = Persona;
            message["session"] = Session;
            message["text"] = Text;
            if (Image != null) message["image"] = Image.ToMap();
            if (Context != null && Context.Count > 0)
            {
                var context = new Dictionary<string, object>();
                foreach (KeyValuePair<string, string> pair in Context) context[pair.Key] = pair.Value;
                message["context"] = context;
            }
            message["options"] = (Options ?? new NpcSayOptions()).ToMap();
            return message;
        }
    }

    /// <summary>A streamed piece of an NPC line.</summary>
    public sealed class NpcChunk
    {
        /// <summary>The say request this belongs to.</summary>
        public string RequestId;
        /// <summary>The new text (append it to what came before).</summary>
        public string Text;
        /// <summary>0, 1, 2, ... in order.</summary>
        public long Seq;
    }

    /// <summary>The finished NPC line with its emotion.</summary>
    public sealed class NpcReply
    {
        /// <summary>The say request this answers.</summary>
        public string RequestId;
        /// <summary>The whole line.</summary>
        public string Text;
        /// <summary>One of <see cref="NpcProtocol.Emotions"/>.</summary>
        public string Emotion;
        /// <summary>How strongly, 0..1.</summary>
        public double Intensity;
        /// <summary>Score per emotion label.</summary>
        public Dictionary<string, double> Scores = new Dictionary<string, double>();
        /// <summary>The persona that spoke.</summary>
        public string Persona;
        /// <summary>The session the line belongs to.</summary>
        public string Session;
        /// <summary>Server-side timings in milliseconds (queue, first_token, total, ...).</summary>
        public Dictionary<string, double> TimingMs = new Dictionary<string, double>();
        /// <summary>The whole reply message as decoded.</summary>
        public Dictionary<string, object> Raw;
    }

    /// <summary>The server's answer to hello.</summary>
    public sealed class NpcWelcome
    {
        /// <summary>Protocol versions the server speaks.</summary>
        public List<long> Protocols = new List<long>();
        /// <summary>Persona ids the server has.</summary>
        public List<string> Personas = new List<string>();
        /// <summary>Emotion labels the server uses.</summary>
        public List<string> Emotions = new List<string>();
        /// <summary>The ONNX Runtime execution provider in use.</summary>
        public string Provider;
        /// <summary>The whole welcome message as decoded (server, model, limits, ...).</summary>
        public Dictionary<string, object> Raw;
    }

    /// <summary>Builds request maps and reads fields out of decoded replies without throwing on odd types.</summary>
    public static class NpcMessages
    {
        /// <summary>A request map with v, id and type, in that order.</summary>
        public static Dictionary<string, object> Request(string id, string type)
        {
            return new Dictionary<string, object> { { "v", (long)NpcProtocol.Version }, { "id", id }, { "type", type } };
        }

        /// <summary>The message's id as a string (ints become their decimal text), or null.</summary>
        public static string IdOf(Dictionary<string, object> message)
        {
            object id;
            if (!message.TryGetValue("id", out id) || id == null) return null;
            return Convert.ToString(id, System.Globalization.CultureInfo.InvariantCulture);
        }

        /// <summary>A string field, or <paramref name="fallback"/>.</summary>
        public static string GetString(Dictionary<string, object> map, string key, string fallback)
        {
            object value;
            if (map != null && map.TryGetValue(key, out value) && value is string) return (string)value;
            return fallback;
        }

        /// <summary>A number field (int or float on the wire), or <paramref name="fallback"/>.</summary>
        public static double GetDouble(Dictionary<string, object> map, string key, double fallback)
        {
            object value;
            if (map == null || !map.TryGetValue(key, out value)) return fallback;
            if (value is double) return (double)value;
            if (value is long) return (long)value;
            if (value is ulong) return (ulong)value;
            return fallback;
        }

        /// <summary>An integer field, or <paramref name="fallback"/>.</summary>
        public static long GetLong(Dictionary<string, object> map, string key, long fallback)
        {
            object value;
            if (map != null && map.TryGetValue(key, out value) && value is long) return (long)value;
            return fallback;
        }

        /// <summary>A map field, or null.</summary>
        public static Dictionary<string, object> GetMap(Dictionary<string, object> map, string key)
        {
            object value;
            if (map != null && map.TryGetValue(key, out value)) return value as Dictionary<string, object>;
            return null;
        }

        /// <summary>An array field, or an empty list.</summary>
        public static List<object> GetList(Dictionary<string, object> map, string key)
        {
            object value;
            if (map != null && map.TryGetValue(key, out value) && value is List<object>) return (List<object>)value;
            return new List<object>();
        }

        /// <summary>Reads a chunk message.</summary>
        public static NpcChunk ParseChunk(Dictionary<string, object> message)
        {
            return new NpcChunk
            {
                RequestId = IdOf(message),
                Text = GetString(message, "text", ""),
                Seq = GetLong(message, "seq", 0),
            };
        }

        /// <summary>Reads a reply message.</summary>
        public static NpcReply ParseReply(Dictionary<string, object> message)
        {
            var reply = new NpcReply
            {
                RequestId = IdOf(message),
                Text = GetString(message, "text", ""),
                Persona = GetString(message, "persona", null),
                Session = GetString(message, "session", null),
                Raw = message,
            };
            Dictionary<string, object> emotion = GetMap(message, "emotion");
            reply.Emotion = GetString(emotion, "label", "neutral");
            reply.Intensity = GetDouble(emotion, "intensity", 0.0);
            CopyNumbers(GetMap(emotion, "scores"), reply.Scores);
            CopyNumbers(GetMap(message, "timing_ms"), reply.TimingMs);
            return reply;
        }

        /// <summary>Reads a welcome message.</summary>
        public static NpcWelcome ParseWelcome(Dictionary<string, object> message)
        {
            var welcome = new NpcWelcome { Provider = GetString(message, "provider", null), Raw = message };
            foreach (object v in GetList(message, "protocol")) if (v is long) welcome.Protocols.Add((long)v);
            foreach (object p in GetList(message, "personas"))
            {
                if (p is string) welcome.Personas.Add((string)p);
                else if (p is Dictionary<string, object>) welcome.Personas.Add(GetString((Dictionary<string, object>)p, "id", ""));
            }
            foreach (object e in GetList(message, "emotions")) if (e is string) welcome.Emotions.Add((string)e);
            return welcome;
        }

        private static void CopyNumbers(Dictionary<string, object> source, Dictionary<string, double> target)
        {
            if (source == null) return;
            foreach (string key in source.Keys) target[key] = GetDouble(source, key, 0.0);
        }
    }
}
