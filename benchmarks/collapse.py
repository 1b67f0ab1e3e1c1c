"""Model collapse, rerunnable: a tiny language model trained for generations on its own samples.

A human corpus is built here, deterministically: short sentences from a handful of templates whose
slots (people, verbs, adjectives, objects, places, times) are drawn from Zipf-weighted word lists,
so a few words are common and many occur only once or twice (the tail). It is split into training
sentences and held-out references. Generation 0 is a tiny Llama (hidden 128, 2 layers, a byte-level
BPE tokenizer trained on the human training sentences) trained from scratch on the human corpus.
Every later generation g is a new model, trained from scratch with the same budget (steps, batch,
learning rate, initial weights) on one of two data policies:

- ``replace``: only ``--samples`` texts sampled from generation g-1 (temperature 1.0, nothing cut
  off), as in Shumailov et al. 2024, where the original data is gone after generation 0;
- ``accumulate``: the human corpus plus the samples of every generation 0..g-1 (Gerstgrasser et al.
  2024, where accumulating data keeps the error bounded).

Training from scratch (not fine-tuning g-1) makes each model a function of its data alone, so the
two policies differ only in what they train on. After training, each model samples ``--eval``
texts from an empty prompt (seeded) and :func:`rlaif.measure_round` measures them against the
held-out human references and generation 0's outputs. Alarm thresholds come from generation 0,
which both policies share: ``--fraction`` (0.8) of its distinct-2, of its tail coverage and of
its self-BLEU's headroom below 1; the same thresholds judge both policies. The script reports the
generation at which each alarm first fires per policy, and whether it fired under ``replace``
before (or without) ``accumulate``.

    python benchmarks/collapse.py                          # 6 generations -> runs/bench/collapse.json
    python benchmarks/collapse.py --generations 10         # longer
    python benchmarks/collapse.py --samples 500 --seed 1   # more samples per generation, another seed
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sys
import time
from pathlib import Path
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from judge.core._io import atomic_write  # noqa: E402
from rlaif import Alarm, MonitorThresholds, RoundMonitors, check_alarms, measure_round  # noqa: E402

Policy = Literal["replace", "accumulate"]
POLICIES: tuple[Policy, ...] = ("replace", "accumulate")
#: The alarms watched: a diversity measure each way and the tail.
WATCHED = ("distinct_2", "self_bleu", "tail_coverage")
BOS, EOS, PAD = "<|bos|>", "<|end|>", "<|pad|>"

# Word lists, commonest first: slot i of a list is drawn with weight 1 / (i + 1) ** ZIPF.
AGENT_ADJ = ("old young tired clever quiet cheerful stubborn patient curious lonely nervous proud gentle clumsy "
             "wealthy humble restless solemn absent-minded melancholy garrulous fastidious taciturn "
             "indefatigable").split()
AGENTS = ("farmer teacher sailor baker child doctor painter fisherman soldier poet miner nurse pilot dancer "
          "weaver potter hunter monk merchant student shepherd blacksmith gardener librarian beekeeper ferryman "
          "clockmaker violinist archivist tanner cooper chandler wheelwright harpist locksmith cartographer "
          "astronomer falconer glassblower lamplighter").split()
VERBS = ("found carried painted sold bought repaired hid lost cleaned washed built opened dropped borrowed "
         "buried polished measured weighed guarded stole inspected wrapped mended counted sketched traded "
         "gilded engraved salvaged catalogued varnished appraised").split()
OBJ_ADJ = ("red heavy broken wooden tiny old shiny green rusty golden silver soft cracked strange enormous "
           "fragile velvet copper crimson amber ivory brittle lacquered iridescent gossamer tarnished "
           "filigreed").split()
OBJECTS = ("box lamp basket key map book chair bell coin ring kettle ladder mirror rope drum cup sail anchor "
           "lantern compass flute quilt barrel sword saddle telescope harp hourglass sextant chalice abacus "
           "tapestry astrolabe reliquary samovar harpsichord zither gramophone metronome theodolite").split()
PLACES = ("near the river|in the market|at the harbour|behind the barn|under the bridge|in the garden|"
          "by the old mill|on the hill|inside the tower|at the station|in the cellar|beside the well|"
          "across the valley|beneath the cliffs|in the monastery|at the lighthouse|beyond the marshes|"
          "in the observatory|near the glacier|in the catacombs").split("|")
TIMES = ("at dawn|last night|on monday|in the spring|after the storm|before supper|at midnight|"
         "during the festival|in winter|at noon|during the eclipse|on the solstice").split("|")
TEMPLATES = [
    "the {aa} {agent} {verb} a {oa} {obj} {place}.",
    "{time}, the {agent} {verb} the {obj}.",
    "a {aa} {agent} {verb} the {oa} {obj} {time}.",
    "the {agent} {verb} a {obj} {place} {time}.",
    "did the {agent} see the {oa} {obj} {place}?",
    "nobody knew why the {agent} {verb} the {obj}.",
    "the {obj} that the {agent} {verb} was {oa}.",
    "{place}, a {agent} and a {agent2} {verb} a {oa} {obj}.",
]
ZIPF = 1.3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollapseSettings(_Strict):
    """The experiment's knobs (the command line's flags)."""
    generations: int = Field(default=6, ge=1, description="Generations after generation 0.")
    corpus: int = Field(default=600, ge=20, description="Human sentences built.")
    references: int = Field(default=100, ge=5, description="Of them, held out as references.")
    samples: int = Field(default=250, ge=1, description="Texts sampled per generation to train the next.")
    eval: int = Field(default=500, ge=2, description="Texts sampled per generation to measure it.")
    steps: int = Field(default=500, ge=1, description="Optimiser steps per generation (the same for every model).")
    batch: int = Field(default=32, ge=1, description="Sentences per step.")
    lr: float = Field(default=2e-3, gt=0, description="Peak AdamW learning rate (warm-up, then linear decay).")
    hidden: int = Field(default=128, ge=8, description="Hidden size of the Llama.")
    layers: int = Field(default=2, ge=1, description="Decoder layers.")
    vocab: int = Field(default=600, ge=300, description="BPE vocabulary size (trained on the human sentences).")
    temperature: float = Field(default=1.0, gt=0, description="Sampling temperature (training data and evaluation).")
    max_tokens: int = Field(default=40, ge=4, description="Most new tokens per sample.")
    fraction: float = Field(default=0.8, gt=0, lt=1,
                            description="Thresholds: this share of generation 0's value (self-BLEU: of 1 - it).")
    seed: int = Field(default=0, description="Seed of the corpus, the weights, the batches and the sampling.")

    @model_validator(mode="after")
    def _references_fit(self) -> "CollapseSettings":
        if self.references >= self.corpus:
            raise ValueError(f"references ({self.references}) must be below corpus ({self.corpus})")
        return self


class GenerationRecord(_Strict):
    """One model of one policy: what it trained on, its monitors and the alarms they raised."""
    generation: int = Field(description="0: trained on the human corpus only.")
    policy: Policy | Literal["human"] = Field(description="The data policy (generation 0: human).")
    train_rows: int = Field(description="Sentences in its training data.")
    synthetic_share: float = Field(description="Share of model samples in its training data.")
    train_loss: float = Field(description="Mean token loss over the last tenth of training.")
    monitors: RoundMonitors = Field(description="measure_round on its evaluation samples.")
    alarms: list[Alarm] = Field(description="check_alarms with the thresholds from generation 0.")
    examples: list[str] = Field(description="The first few evaluation samples.")


class FirstAlarm(_Strict):
    """When one watched alarm first fired under each policy."""
    monitor: str = Field(description="The monitor.")
    replace: int | None = Field(description="First generation it fired under replace (None: never).")
    accumulate: int | None = Field(description="First generation it fired under accumulate (None: never).")
    ordering_held: bool = Field(description="It fired under replace, and later or never under accumulate.")


class CollapseReport(_Strict):
    """The whole run."""
    settings: CollapseSettings
    corpus: dict[str, int] = Field(description="Human train, references, distinct words, words seen once or twice.")
    thresholds: MonitorThresholds = Field(description="The alarm thresholds, from generation 0.")
    records: list[GenerationRecord] = Field(description="Generation 0, then every generation of each policy.")
    first_alarms: list[FirstAlarm] = Field(description="Per watched monitor.")
    ordering_held: bool = Field(description="Every watched alarm fired under replace before (or without) accumulate.")
    seconds: float = Field(description="Wall time of the run.")
    machine: dict[str, object] = Field(default_factory=dict, description="CPUs, platform, load at start and end.")


def human_corpus(n: int, seed: int) -> list[str]:
    """``n`` distinct sentences from the templates, slots drawn Zipf-weighted (seeded)."""
    rng = random.Random(seed)

    def pick(words: list[str]) -> str:
        return rng.choices(words, weights=[1 / (i + 1) ** ZIPF for i in range(len(words))])[0]

    out: list[str] = []
    while len(out) < n:
        s = rng.choice(TEMPLATES).format(aa=pick(AGENT_ADJ), agent=pick(AGENTS), agent2=pick(AGENTS), verb=pick(VERBS),
                                         oa=pick(OBJ_ADJ), obj=pick(OBJECTS), place=pick(PLACES), time=pick(TIMES))
        s = re.sub(r"\ba (?=[aeiou])", "an ", s)
        s = s[0].upper() + s[1:]
        if s not in out:
            out.append(s)
    return out


def build_tokenizer(texts: Sequence[str], vocab: int):
    """A byte-level BPE tokenizer trained on ``texts``, with BOS, EOS and PAD tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(texts), trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=[PAD, BOS, EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS)


def new_model(tok, s: CollapseSettings, seed: int):
    """A randomly initialised Llama (the same weights for the same seed)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=s.hidden, intermediate_size=2 * s.hidden,
                      num_hidden_layers=s.layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=128, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).to(torch.float32)


def train(model, tok, texts: Sequence[str], s: CollapseSettings, seed: int) -> float:
    """``s.steps`` AdamW steps on batches drawn (seeded) from ``texts``; the mean loss of the last tenth."""
    import torch

    ids = [[tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"], tok.eos_token_id] for t in texts]
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.01)
    warm = max(1, s.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / warm, max(0.0, (s.steps - i) / max(1, s.steps - warm))))
    order: list[int] = []
    losses: list[float] = []
    model.train()
    for _ in range(s.steps):
        if len(order) < s.batch:  # epochs of a fresh shuffle, so every sentence is seen as often
            fresh = list(range(len(ids)))
            rng.shuffle(fresh)
            order += fresh
        batch, order = [ids[i] for i in order[: s.batch]], order[s.batch :]
        width = max(len(b) for b in batch)
        x = torch.tensor([b + [tok.pad_token_id] * (width - len(b)) for b in batch])
        mask = torch.tensor([[1] * len(b) + [0] * (width - len(b)) for b in batch])
        loss = model(input_ids=x, attention_mask=mask, labels=x.masked_fill(mask == 0, -100)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    tail = losses[-max(1, len(losses) // 10):]
    return sum(tail) / len(tail)


def sample(model, tok, n: int, s: CollapseSettings, seed: int, chunk: int = 256) -> list[str]:
    """``n`` texts from an empty prompt (BOS), pure sampling at ``s.temperature`` (seeded)."""
    import torch
    from transformers import DynamicCache

    gen = torch.Generator().manual_seed(seed)
    model.eval()
    out: list[str] = []
    with torch.no_grad():
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            x = torch.full((m, 1), tok.bos_token_id)
            cache, done, rows = DynamicCache(), torch.zeros(m, dtype=torch.bool), []
            for _ in range(s.max_tokens):
                logits = model(input_ids=x, past_key_values=cache, use_cache=True).logits[:, -1, :]
                probs = torch.softmax(logits / s.temperature, dim=-1)
                x = torch.multinomial(probs, 1, generator=gen)
                rows.append(x[:, 0])
                done |= x[:, 0] == tok.eos_token_id
                if bool(done.all()):
                    break
            for seq in torch.stack(rows, dim=1).tolist():
                cut = seq.index(tok.eos_token_id) if tok.eos_token_id in seq else len(seq)
                out.append(tok.decode(seq[:cut], skip_special_tokens=True).strip())
    return out


def thresholds_from(g0: RoundMonitors, fraction: float) -> MonitorThresholds:
    """The watched alarms at ``fraction`` of generation 0's diversity and tail.

    Distinct-2 and tail coverage alarm below ``fraction`` of their generation-0 values. Self-BLEU
    rises as diversity falls and is bounded by 1, so its alarm is on the headroom: above
    ``1 - fraction * (1 - self-BLEU of generation 0)`` (generation 0's value divided by the
    fraction would often lie beyond 1, where no value can reach it).
    """
    data: dict[str, float] = {"distinct_2": fraction * g0.distinct_2}
    if g0.tail_coverage is not None:
        data["tail_coverage"] = fraction * g0.tail_coverage
    if g0.self_bleu is not None:
        data["self_bleu"] = 1 - fraction * (1 - g0.self_bleu)
    return MonitorThresholds.model_validate(data)


def first_alarms(records: Sequence[GenerationRecord]) -> list[FirstAlarm]:
    """Per watched monitor, the first generation each policy's alarm fired, and whether replace came first."""
    found = []
    for mon in WATCHED:
        first: dict[str, int | None] = {}
        for policy in POLICIES:
            gens = [r.generation for r in records if r.policy == policy and any(a.monitor == mon for a in r.alarms)]
            first[policy] = min(gens) if gens else None
        r, a = first["replace"], first["accumulate"]
        held = r is not None and (a is None or a > r)
        found.append(FirstAlarm(monitor=mon, replace=r, accumulate=a, ordering_held=held))
    return found


def train_generation(tok, data: list[str], refs: list[str], s: CollapseSettings, g: int,
                     g0_outputs: list[str] | None, history: list[RoundMonitors], share: float):
    """A new model trained on ``data``: (model, its evaluation samples' monitors, final loss, samples)."""
    model = new_model(tok, s, s.seed)  # the same initial weights for every generation and policy
    loss = train(model, tok, data, s, seed=s.seed + g)
    outputs = sample(model, tok, s.eval, s, seed=s.seed + 1_000_000 + g)
    mon = measure_round(outputs, refs, round0_outputs=outputs if g0_outputs is None else g0_outputs,
                        previous=history, round=g, synthetic_share=share)
    return model, mon, loss, outputs


def run(s: CollapseSettings, progress: bool = True) -> CollapseReport:
    """Generation 0, then ``s.generations`` generations under each policy."""
    from collections import Counter

    from rlaif._monitor_metrics import tokens

    t0 = time.perf_counter()
    sentences = human_corpus(s.corpus, s.seed)
    refs, human = sentences[: s.references], sentences[s.references :]
    counts = Counter(w for t in human for w in tokens(t))
    tok = build_tokenizer(human, s.vocab)
    model0, mon0, loss0, g0_out = train_generation(tok, human, refs, s, 0, None, [], 0.0)
    if progress:
        print(f"  generation 0 human      loss {loss0:.3f}  distinct-2 {mon0.distinct_2:.3f}  "
              f"tail {_f(mon0.tail_coverage)}  ({time.perf_counter() - t0:.0f}s)", flush=True)
    thresholds = thresholds_from(mon0, s.fraction)
    records = [GenerationRecord(generation=0, policy="human", train_rows=len(human), synthetic_share=0.0,
                                train_loss=loss0, monitors=mon0, alarms=check_alarms(mon0, thresholds),
                                examples=g0_out[:3])]
    for policy in POLICIES:
        model, history, pool = model0, [mon0], []
        for g in range(1, s.generations + 1):
            pool.append(sample(model, tok, s.samples, s, seed=s.seed + 1_000 + g))  # generation g-1's samples
            data = pool[-1] if policy == "replace" else human + [t for p in pool for t in p]
            share = 1.0 if policy == "replace" else 1 - len(human) / len(data)
            model, mon, loss, outputs = train_generation(tok, data, refs, s, g, g0_out, history, share)
            records.append(GenerationRecord(generation=g, policy=policy, train_rows=len(data), synthetic_share=share,
                                            train_loss=loss, monitors=mon, alarms=check_alarms(mon, thresholds),
                                            examples=outputs[:3]))
            history.append(mon)
            if progress:
                print(f"  generation {g} {policy:<10} loss {loss:.3f}  distinct-2 {mon.distinct_2:.3f}  "
                      f"tail {_f(mon.tail_coverage)}  ({time.perf_counter() - t0:.0f}s)", flush=True)
    firsts = first_alarms(records)
    return CollapseReport(
        settings=s, corpus={"human_train": len(human), "references": len(refs), "words": len(counts),
                            "words_seen_once_or_twice": sum(1 for c in counts.values() if c <= 2)},
        thresholds=thresholds, records=records, first_alarms=firsts,
        ordering_held=all(f.ordering_held for f in firsts), seconds=round(time.perf_counter() - t0, 1))


def _f(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def table(r: CollapseReport) -> str:
    """The monitors per generation and policy, the thresholds and the first alarms."""
    th = r.thresholds
    lines = [f"model collapse: {r.settings.generations} generations, {r.corpus['human_train']} human sentences "
             f"({r.corpus['words_seen_once_or_twice']} of {r.corpus['words']} words seen once or twice), "
             f"{r.settings.eval} evaluation samples per generation",
             f"alarm thresholds (from generation 0, fraction {r.settings.fraction}): " + ", ".join(
                 f"{k} {side} {_f(v)}" for k in WATCHED if (b := getattr(th, k)) is not None
                 for side, v in (("below", b.below), ("above", b.above)) if v is not None),
             f"{'gen':>3} {'policy':<10} {'rows':>5} {'synth':>5} {'loss':>5} {'dist-1':>6} {'dist-2':>6} "
             f"{'sBLEU':>6} {'tail':>6} {'rep':>5} {'len':>5}  alarms"]
    for rec in r.records:
        m = rec.monitors
        lines.append(f"{rec.generation:>3} {rec.policy:<10} {rec.train_rows:>5} {rec.synthetic_share:>5.2f} "
                     f"{rec.train_loss:>5.2f} {m.distinct_1:>6.3f} {m.distinct_2:>6.3f} {_f(m.self_bleu):>6} "
                     f"{_f(m.tail_coverage):>6} {m.repetition_rate:>5.2f} {m.mean_length:>5.1f}  "
                     + (", ".join(a.monitor for a in rec.alarms) or "-"))
    never = lambda g: "never" if g is None else g  # noqa: E731
    lines.append("first alarm (generation): " + "; ".join(
        f"{f.monitor} replace {never(f.replace)}, accumulate {never(f.accumulate)}"
        + ("" if f.ordering_held else " (ordering NOT held)") for f in r.first_alarms))
    lines.append(f"replace alarmed before accumulate on every watched monitor: {'yes' if r.ordering_held else 'no'}"
                 f"   ({r.seconds:.0f}s)")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, field in CollapseSettings.model_fields.items():
        kind = float if field.annotation is float else int
        ap.add_argument(f"--{name.replace('_', '-')}", type=kind, default=field.default, help=field.description)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "collapse.json")
    ap.add_argument("--quiet", action="store_true", help="Print only the table.")
    return ap


def main(argv: Sequence[str] | None = None) -> CollapseReport:
    args = parser().parse_args(argv)
    opts = {k: getattr(args, k) for k in CollapseSettings.model_fields}
    try:
        settings = CollapseSettings(**opts)
    except Exception as exc:  # pydantic names the field and the value given
        raise SystemExit(f"collapse.py: {exc}") from None
    load0 = os.getloadavg()
    report = run(settings, progress=not args.quiet)
    report.machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "load_start": list(load0),
                      "load_end": list(os.getloadavg())}
    print(table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, report.model_dump_json(indent=1) + "\n")
    print(f"-> {args.out}")
    return report


if __name__ == "__main__":
    main()
