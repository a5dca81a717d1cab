//! A synthetic regtest chain built with rust-bitcoin, for the chain watcher's tests and
//! benchmark: real blocks (a BIP 34 coinbase, the merkle root of their transactions,
//! headers linked to their parent and meeting regtest's proof of work) and real
//! transactions paying derived addresses, spending outputs of the chain's first coinbase.

#![allow(dead_code)]

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash as _;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Address, Amount, Block, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxMerkleNode, TxOut, Witness,
};

/// Outputs of block 1's coinbase, handed out one by one to fund payments.
const FUNDING_OUTPUTS: u32 = 5_000;

/// One branch of a regtest chain: `blocks[h]` is the block at height `h`.
#[derive(Clone)]
pub struct Chain {
    pub blocks: Vec<Block>,
    /// A cell, so a payment can be built inside the call that mines it.
    next_coin: std::cell::Cell<u32>,
    /// Makes coinbases (and so blocks) of different branches differ.
    branch: u32,
}

impl Chain {
    /// Regtest's genesis block and a block 1 whose coinbase funds the payments.
    pub fn new() -> Self {
        let mut chain = Self {
            blocks: vec![bitcoin::constants::genesis_block(Network::Regtest)],
            next_coin: std::cell::Cell::new(0),
            branch: 0,
        };
        chain.mine_with_coinbase_outputs(Vec::new(), FUNDING_OUTPUTS);
        chain
    }

    /// The height of the tip.
    pub fn height(&self) -> u32 {
        (self.blocks.len() - 1) as u32
    }

    pub fn tip(&self) -> &Block {
        self.blocks.last().expect("a chain has its genesis block")
    }

    /// The block at `height`.
    pub fn at(&self, height: u32) -> &Block {
        &self.blocks[height as usize]
    }

    /// An unspent funding output (each is handed out once per branch).
    pub fn coin(&self) -> OutPoint {
        let n = self.next_coin.get();
        assert!(n < FUNDING_OUTPUTS, "out of funding outputs");
        self.next_coin.set(n + 1);
        OutPoint::new(self.blocks[1].txdata[0].compute_txid(), n)
    }

    /// A branch sharing this chain up to `height`, which then goes its own way (its blocks
    /// differ even with the same transactions).
    pub fn fork_at(&self, height: u32) -> Self {
        let mut fork = self.clone();
        fork.blocks.truncate(height as usize + 1);
        fork.branch = self.branch + 1_000 + height;
        fork
    }

    /// Mines a block with `txs` on top of the tip and returns it.
    pub fn mine(&mut self, txs: Vec<Transaction>) -> Block {
        self.mine_with_coinbase_outputs(txs, 1)
    }

    /// Mines `n` empty blocks.
    pub fn mine_empty(&mut self, n: u32) {
        for _ in 0..n {
            self.mine(Vec::new());
        }
    }

    fn mine_with_coinbase_outputs(&mut self, txs: Vec<Transaction>, outputs: u32) -> Block {
        let height = self.height() + 1;
        let coinbase = coinbase(height, self.branch, outputs);
        let mut txdata = vec![coinbase];
        txdata.extend(txs);
        let prev = self.tip().block_hash();
        let mut block = Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: prev,
                merkle_root: TxMerkleNode::all_zeros(),
                time: 1_700_000_000 + height * 600,
                bits: CompactTarget::from_consensus(0x207f_ffff),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().expect("a block has a coinbase");
        // Regtest's target accepts about one hash in two.
        while block.header.validate_pow(block.header.target()).is_err() {
            block.header.nonce += 1;
        }
        self.blocks.push(block.clone());
        block
    }

    pub fn tip_hash(&self) -> BlockHash {
        self.tip().block_hash()
    }
}

/// A coinbase for `height` (BIP 34: the height first in its script), with `outputs`
/// anyone-can-spend outputs of 0.01 BTC.
fn coinbase(height: u32, branch: u32, outputs: u32) -> Transaction {
    let mut extra = PushBytesBuf::new();
    extra
        .extend_from_slice(&branch.to_le_bytes())
        .expect("four bytes fit");
    let script_sig = Builder::new()
        .push_int(i64::from(height))
        .push_slice(extra)
        .into_script();
    Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: (0..outputs)
            .map(|_| TxOut {
                value: Amount::from_sat(1_000_000),
                // OP_TRUE: anyone can spend it, so payments need no keys.
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            })
            .collect(),
    }
}

/// A transaction spending `inputs` and paying each `(address, sats)`; `rbf` sets the
/// BIP 125 signal.
pub fn pay(inputs: &[OutPoint], outputs: &[(&str, u64)], rbf: bool) -> Transaction {
    let sequence = if rbf {
        Sequence::ENABLE_RBF_NO_LOCKTIME
    } else {
        Sequence::MAX
    };
    Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|o| TxIn {
                previous_output: *o,
                script_sig: ScriptBuf::new(),
                sequence,
                witness: Witness::from_slice(&[[1u8; 64]]),
            })
            .collect(),
        output: outputs
            .iter()
            .map(|(address, sats)| TxOut {
                value: Amount::from_sat(*sats),
                script_pubkey: address
                    .parse::<Address<_>>()
                    .expect("a valid address")
                    .assume_checked()
                    .script_pubkey(),
            })
            .collect(),
    }
}
