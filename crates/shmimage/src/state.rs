//! Buffer states and the legal moves between them. Pure: no I/O, no unsafe,
//! so tests (and a model checker) can drive it without a file.

/// The state of one buffer, as stored in the header's state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum BufferState {
    /// Free: the server may fill it.
    Server = 0,
    /// The server is writing a frame into it.
    ServerLocked = 1,
    /// Holds a complete band the client has not taken.
    Client = 2,
    /// The client has locked this frame.
    ClientLocked = 3,
    /// No client has connected.
    Init = 4,
}

/// Which end of a stream acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The producer.
    Server,
    /// The consumer.
    Client,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Server => "server",
            Role::Client => "client",
        })
    }
}

impl BufferState {
    /// Every state, by value.
    pub const ALL: [BufferState; 5] = [
        BufferState::Server,
        BufferState::ServerLocked,
        BufferState::Client,
        BufferState::ClientLocked,
        BufferState::Init,
    ];

    /// Decode a state word; any other value (a corrupt or hostile file) is `None`.
    pub fn from_word(word: u32) -> Option<BufferState> {
        BufferState::ALL.get(word as usize).copied()
    }

    /// The word stored for this state (the state byte plus three zero pad bytes).
    pub fn word(self) -> u32 {
        self as u32
    }

    /// Who may change a buffer in this state.
    pub fn owner(self) -> Role {
        match self {
            BufferState::Server | BufferState::ServerLocked => Role::Server,
            BufferState::Client | BufferState::ClientLocked | BufferState::Init => Role::Client,
        }
    }

    /// The spec's name, e.g. `CLIENT_LOCKED`.
    pub fn name(self) -> &'static str {
        match self {
            BufferState::Server => "SERVER",
            BufferState::ServerLocked => "SERVER_LOCKED",
            BufferState::Client => "CLIENT",
            BufferState::ClientLocked => "CLIENT_LOCKED",
            BufferState::Init => "INIT",
        }
    }
}

/// Every state change the engine makes, named. Each is one compare-and-swap of
/// a state word from one state to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// Server create: reset a header to INIT (whatever it held).
    ServerReset,
    /// Server takes a free buffer to fill it: SERVER -> SERVER_LOCKED.
    Take,
    /// Server publishes a band: SERVER_LOCKED -> CLIENT.
    Publish,
    /// Server gives back a loan it did not commit: SERVER_LOCKED -> SERVER.
    Abandon,
    /// Server takes back the buffers of a client that died: any but
    /// SERVER_LOCKED -> INIT (the only move on another side's states, allowed
    /// because the owner no longer exists).
    Reclaim,
    /// Client connects: INIT -> SERVER.
    Connect,
    /// Client locks a frame: CLIENT -> CLIENT_LOCKED.
    Lock,
    /// Client unlocks: CLIENT_LOCKED -> SERVER.
    Unlock,
    /// Client drops a stale band or frame: CLIENT -> SERVER.
    Release,
    /// Client reconnecting takes over what a client owned (CLIENT_LOCKED,
    /// INIT, or an invalid value) -> SERVER.
    TakeOver,
    /// Client destroys its stream: CLIENT, CLIENT_LOCKED or SERVER -> INIT,
    /// so the server answers UNCONNECTED.
    Disconnect,
}

impl Transition {
    /// The side that makes this move.
    pub fn actor(self) -> Role {
        match self {
            Transition::ServerReset
            | Transition::Take
            | Transition::Publish
            | Transition::Abandon
            | Transition::Reclaim => Role::Server,
            _ => Role::Client,
        }
    }

    /// The target state.
    pub fn to(self) -> BufferState {
        match self {
            Transition::ServerReset | Transition::Reclaim | Transition::Disconnect => BufferState::Init,
            Transition::Take => BufferState::ServerLocked,
            Transition::Publish => BufferState::Client,
            Transition::Lock => BufferState::ClientLocked,
            Transition::Abandon
            | Transition::Connect
            | Transition::Unlock
            | Transition::Release
            | Transition::TakeOver => BufferState::Server,
        }
    }

    /// True when this move may start from `from` (`None`: an invalid word).
    pub fn allowed_from(self, from: Option<BufferState>) -> bool {
        use BufferState as S;
        match self {
            Transition::ServerReset => true,
            Transition::Take => from == Some(S::Server),
            Transition::Publish | Transition::Abandon => from == Some(S::ServerLocked),
            Transition::Reclaim => matches!(from, Some(S::Server | S::Client | S::ClientLocked)),
            Transition::Connect => from == Some(S::Init),
            Transition::Lock | Transition::Release => from == Some(S::Client),
            Transition::Unlock => from == Some(S::ClientLocked),
            Transition::TakeOver => matches!(from, None | Some(S::ClientLocked | S::Init)),
            Transition::Disconnect => matches!(from, Some(S::Server | S::Client | S::ClientLocked)),
        }
    }
}

/// The buffer a server takes for its next frame: of the SERVER (free) ones,
/// the least recently written (`last_written` holds each buffer's write
/// sequence). `states` are the two state words as read.
pub fn pick_free(states: [u32; 2], last_written: [u64; 2]) -> Option<usize> {
    (0..2).filter(|&i| states[i] == BufferState::Server.word()).min_by_key(|&i| last_written[i])
}

/// Of two buffers holding whole frames numbered `numbers`, the one holding
/// the older frame (which the client gives back). Serial-number order, so it
/// survives wrap-around.
pub fn older_frame(numbers: [u32; 2]) -> usize {
    usize::from(crate::layout::is_newer(numbers[0], numbers[1]))
}

/// What a client's lock does with the whole frames waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockChoice {
    /// No whole frame waits.
    Nothing,
    /// Lock this buffer.
    Lock(usize),
    /// Both hold whole frames: give `release` back (the older), lock `lock`.
    ReleaseThenLock {
        /// The buffer with the older frame.
        release: usize,
        /// The buffer with the newer frame.
        lock: usize,
    },
}

/// The lock decision: `whole[i]` says buffer i is CLIENT with a valid whole
/// frame, numbered `numbers[i]`.
pub fn lock_choice(whole: [bool; 2], numbers: [u32; 2]) -> LockChoice {
    match whole {
        [false, false] => LockChoice::Nothing,
        [true, false] => LockChoice::Lock(0),
        [false, true] => LockChoice::Lock(1),
        [true, true] => {
            let release = older_frame(numbers);
            LockChoice::ReleaseThenLock { release, lock: 1 - release }
        }
    }
}

/// After locking frame `locked`, a whole frame `other` found in the other
/// buffer is stale (older) and goes back to the server.
pub fn is_stale(locked: u32, other: u32) -> bool {
    crate::layout::is_newer(locked, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_T: [Transition; 11] = [
        Transition::ServerReset,
        Transition::Take,
        Transition::Publish,
        Transition::Abandon,
        Transition::Reclaim,
        Transition::Connect,
        Transition::Lock,
        Transition::Unlock,
        Transition::Release,
        Transition::TakeOver,
        Transition::Disconnect,
    ];

    #[test]
    fn words_round_trip_and_others_are_invalid() {
        for s in BufferState::ALL {
            assert_eq!(BufferState::from_word(s.word()), Some(s));
        }
        for w in [5, 0x100, 0x0400_0000, u32::MAX] {
            assert_eq!(BufferState::from_word(w), None, "{w:#x}");
        }
        assert_eq!(BufferState::Server.word(), 0);
        assert_eq!(BufferState::Init.word(), 4);
    }

    /// Apart from the documented exceptions (a server resetting a file and
    /// reclaiming from a dead client; a client disconnecting its free buffers),
    /// only the owner of the current state moves it.
    #[test]
    fn only_the_owner_moves_a_state() {
        for t in ALL_T {
            for from in BufferState::ALL {
                if !t.allowed_from(Some(from)) {
                    continue;
                }
                let exception = matches!(t, Transition::ServerReset | Transition::Reclaim)
                    || (t == Transition::Disconnect && from == BufferState::Server);
                if !exception {
                    assert_eq!(from.owner(), t.actor(), "{t:?} from {from:?}");
                }
            }
        }
    }

    #[test]
    fn the_normal_cycle_is_legal() {
        use BufferState as S;
        let cycle = [
            (S::Init, Transition::Connect),
            (S::Server, Transition::Take),
            (S::ServerLocked, Transition::Publish),
            (S::Client, Transition::Lock),
            (S::ClientLocked, Transition::Unlock),
        ];
        let mut state = S::Init;
        for (from, t) in cycle {
            assert_eq!(state, from);
            assert!(t.allowed_from(Some(state)));
            state = t.to();
        }
        assert_eq!(state, S::Server);
    }

    #[test]
    fn no_one_takes_a_buffer_the_server_is_writing() {
        for t in ALL_T {
            if t.allowed_from(Some(BufferState::ServerLocked)) {
                assert!(matches!(t, Transition::ServerReset | Transition::Publish | Transition::Abandon), "{t:?}");
            }
        }
        assert!(Transition::TakeOver.allowed_from(None));
        assert!(!Transition::Lock.allowed_from(None));
    }

    #[test]
    fn decisions_take_the_newest_and_the_least_recently_written() {
        let (s, c) = (BufferState::Server.word(), BufferState::Client.word());
        assert_eq!(pick_free([s, s], [5, 3]), Some(1));
        assert_eq!(pick_free([c, s], [0, 9]), Some(1));
        assert_eq!(pick_free([c, c], [0, 0]), None);
        assert_eq!(lock_choice([false, false], [0, 0]), LockChoice::Nothing);
        assert_eq!(lock_choice([false, true], [9, 1]), LockChoice::Lock(1));
        assert_eq!(lock_choice([true, true], [7, 8]), LockChoice::ReleaseThenLock { release: 0, lock: 1 });
        // Across the wrap: 0 follows u32::MAX.
        assert_eq!(lock_choice([true, true], [0, u32::MAX]), LockChoice::ReleaseThenLock { release: 1, lock: 0 });
        assert!(is_stale(3, 2) && !is_stale(2, 3));
    }
}
