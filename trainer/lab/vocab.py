"""A word-level tokenizer for the drawn world, saved in Hugging Face format (no download).

open_clip's bundled BPE forces a 49,408-row token embedding, most of the lab's 25 MB budget. The
lab's language has about a hundred words, so a ``tokenizers`` WordLevel model (lower-cased,
``<|startoftext|> ... <|endoftext|>``, pad id 0) is enough. open_clip loads it through its
``HFTokenizer`` from a model folder (``text_cfg.hf_tokenizer_name`` set) and diffusers pipelines
load the same files with ``AutoTokenizer``. Ids follow ``trainer.feedback.tiny``: pad 0, unk 1,
bos 2, eos 3.
"""

from __future__ import annotations

from pathlib import Path

from trainer.scenes.captions import TEMPLATES
from trainer.scenes.world import COLORS, COUNT_WORDS, DIRECTIONS, LETTERS, SHAPES

SPECIAL_TOKENS = ("<|pad|>", "<|unk|>", "<|startoftext|>", "<|endoftext|>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
_GRAMMAR_WORDS = (
    "filled hollow striped plain shape shapes pointing with without dot the letter seen from front angle "
    "to left right of and"
)
# Words common in zero-shot prompt templates, so they are known tokens rather than <|unk|>.
_PROMPT_WORDS = "photo image drawing picture rendering sketch this is it there . , a an"


def lab_vocabulary() -> list[str]:
    """Every word the caption grammar can produce, plus common prompt words; sorted, no duplicates."""
    words = set(_GRAMMAR_WORDS.split()) | set(_PROMPT_WORDS.split())
    words |= {w for template in TEMPLATES for w in template.replace("{}", " ").split()}
    words |= set(SHAPES) | {s + ("es" if s == "box" else "s") for s in SHAPES}
    words |= set(COLORS) | set(DIRECTIONS) | set(LETTERS) | set(COUNT_WORDS)
    return sorted(words)


def build_word_tokenizer(folder: Path | str, max_length: int) -> Path:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` (a PreTrainedTokenizerFast) into ``folder``."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *lab_vocabulary()))}
    core = Tokenizer(WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS[UNK_ID]))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    bos, eos = SPECIAL_TOKENS[BOS_ID], SPECIAL_TOKENS[EOS_ID]
    core.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, BOS_ID), (eos, EOS_ID)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        model_max_length=max_length,
        pad_token=SPECIAL_TOKENS[PAD_ID],
        unk_token=SPECIAL_TOKENS[UNK_ID],
        bos_token=bos,
        eos_token=eos,
    )
    folder = Path(folder)
    tokenizer.save_pretrained(str(folder))
    return folder


def vocab_size() -> int:
    return len(SPECIAL_TOKENS) + len(lab_vocabulary())
