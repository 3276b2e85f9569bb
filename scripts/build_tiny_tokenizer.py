"""Builds the small tokenizer shipped for the `tiny` variant (lerobot_policy_reconvla/assets/tiny_tokenizer).

The full variants use PaliGemma's 257k-token SentencePiece tokenizer, which lives on the Hub. The tiny
variant needs one that loads with no network and keeps the embedding table small, so CPU tests and the
offline demo run the real model. A byte-level BPE covers any text (unknown words fall back to bytes);
the merges are learned from robot-instruction sentences so ALOHA prompts stay short.

Deterministic: rerunning rewrites the same files.

    .venv/bin/python scripts/build_tiny_tokenizer.py
"""

import itertools
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

VOCAB_SIZE = 1024
OUT_DIR = Path(__file__).resolve().parents[1] / "lerobot_policy_reconvla" / "assets" / "tiny_tokenizer"

VERBS = [
    "pick up",
    "place",
    "put",
    "insert",
    "transfer",
    "move",
    "push",
    "pull",
    "open",
    "close",
    "lift",
    "grasp",
    "hand over",
    "stack",
    "rotate",
    "slide",
    "drop",
    "fold",
    "pour",
    "wipe",
    "turn",
    "press",
]
OBJECTS = [
    "the cube",
    "the peg",
    "the socket",
    "the red block",
    "the blue block",
    "the cup",
    "the drawer",
    "the towel",
    "the bottle",
    "the lid",
    "the sponge",
    "the tape",
    "the battery",
    "the bowl",
    "the plate",
]
PLACES = [
    "into the socket",
    "on the table",
    "to the left arm",
    "to the right arm",
    "into the bin",
    "on the plate",
    "next to the bowl",
    "in the drawer",
    "onto the shelf",
    "with the left arm",
    "with the right arm",
    "with both arms",
]
FIXED = [
    "Insert the peg into the socket.",
    "Pick up the cube with the right arm and transfer it to the left arm.",
]


def corpus() -> list[str]:
    sentences = list(FIXED)
    for verb, obj, place in itertools.product(VERBS, OBJECTS, PLACES):
        sentences.append(f"{verb.capitalize()} {obj} {place}.")
    return sentences


def main() -> None:
    special = ["<pad>", "<eos>", "<bos>", "<unk>"]  # PaliGemma's order: pad=0, eos=1, bos=2, unk=3
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    # Like PaliGemma's tokenizer: a <bos> before every prompt.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", tokenizer.token_to_id("<bos>"))]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    wrapped.model_max_length = 1024
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(OUT_DIR)
    print(f"wrote {OUT_DIR} (vocab {len(wrapped)})")


if __name__ == "__main__":
    main()
