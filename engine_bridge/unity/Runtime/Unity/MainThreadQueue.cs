// Hands work from the client's I/O thread to Unity's main thread: the I/O thread enqueues, Update() drains.
using System;
using System.Collections.Concurrent;

namespace NpcDialogue
{
    /// <summary>A thread-safe queue of actions that the owner runs on its own thread (Unity's main thread).</summary>
    public sealed class MainThreadQueue
    {
        private readonly ConcurrentQueue<Action> _actions = new ConcurrentQueue<Action>();

        /// <summary>Queues an action; safe from any thread.</summary>
        public void Post(Action action)
        {
            if (action == null) throw new ArgumentNullException("action");
            _actions.Enqueue(action);
        }

        /// <summary>
        /// Runs what was queued before this call, in order; returns how many ran. An action that throws is
        /// reported to <paramref name="onError"/> and does not stop the others.
        /// </summary>
        public int Drain(Action<Exception> onError)
        {
            int count = _actions.Count;
            int ran = 0;
            Action action;
            while (ran < count && _actions.TryDequeue(out action))
            {
                ran++;
                try
                {
                    action();
                }
                catch (Exception exc)
                {
                    if (onError != null) onError(exc);
                }
            }
            return ran;
        }
    }
}
