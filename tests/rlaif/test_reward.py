"""The judge as an online reward: ``reward_function`` alone, on the real bundled judge, and inside TRL's GRPOTrainer.

The first tests drive the reward with the scripted backend (a product feature: scripted texts, the
product's own parsing and aggregation) to pin down the arithmetic, the cache and the errors. The
others run the bundled 135M judge (the session's ``hf`` backend, logprob scoring), whose verdicts
are weak: they assert mechanics (rewards are the judge's own scores, the cache spares the backend,
an unscored judgment is None), not judgement. The trainer tests run a few GRPO steps of the tiny
local Llama on CPU with the bundled judge as the reward.
"""

from __future__ import annotations

import asyncio
import json
import math
import re

import pytest

from judge import ConfigError, DataError, Judge, areward_function, reward_function
from judge.backends import ScriptedBackend
from judge.core._config import SamplingConfig, ScoringConfig
from judge.core._records import Item
from judge.scoring import AsyncJudgeReward, JudgeReward

JSON = ScoringConfig(method="json")


def by_word(prompt, params) -> str:
    """Pointwise: 5 for a response saying 'good', 2 otherwise. Pairwise: the higher 'rankN' wins."""
    text = prompt[-1].content
    if params.json_schema and "winner" in params.json_schema.get("properties", {}):
        first, second = (int(x) for x in re.findall(r"rank(\d)", text))  # in the order shown
        return json.dumps({"winner": "A" if first > second else "B" if second > first else "tie"})
    response = text.split(" response>>>")[-1]
    return json.dumps({"helpfulness": 5 if "good" in response else 2})


def chat(text: str, role: str = "user") -> list[dict]:
    return [{"role": role, "content": text}]


class Metrics:
    """Collects what the reward logs through TRL's ``log_metric`` and ``log_extra`` arguments."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.extra: dict[str, list] = {}

    def kwargs(self) -> dict:
        return {"log_metric": self.metrics.__setitem__, "log_extra": self.extra.__setitem__}


# ----------------------------------------------------------------------------------------------
# The arithmetic, the cache and the errors (scripted backend)


def test_conversational_pointwise_rewards_metrics_and_extra_columns():
    be = ScriptedBackend(by_word)
    reward = reward_function(Judge("helpfulness", be, scoring=JSON))
    assert isinstance(reward, JudgeReward) and reward.__name__ == "judge_helpfulness" and reward.range == (1.0, 5.0)
    seen = Metrics()
    prompts = [[{"role": "system", "content": "Be brief."}, *chat("Say hi.")]] * 2 + [chat("Name a fruit.")] * 2
    completions = [chat(t, "assistant") for t in ("good hi", "hi", "good apple", "good pear")]
    out = reward(prompts=prompts, completions=completions, completion_ids=[[1]] * 4, trainer_state=None,
                 source=["a", "b", "c", "d"], **seen.kwargs())  # fmt: skip
    assert out == [5.0, 2.0, 5.0, 5.0]
    assert [r.prompt for r in reward.last] == ["Say hi.", "Say hi.", "Name a fruit.", "Name a fruit."]
    assert [r.completion for r in reward.last] == ["good hi", "hi", "good apple", "good pear"]
    name = "rewards/judge_helpfulness"
    assert seen.metrics[f"{name}/abstain_rate"] == 0.0 and seen.metrics[f"{name}/cache_hit_rate"] == 0.0
    assert seen.metrics[f"{name}/score_mean"] == pytest.approx(4.25)
    assert seen.metrics[f"{name}/score_std"] == pytest.approx(1.5)  # sample std, as TRL's nanstd
    assert seen.metrics[f"{name}/group_std"] == pytest.approx((2.1213203 + 0.0) / 2)  # per prompt, then mean
    assert seen.extra == {"judge_helpfulness_error": [None] * 4}
    assert len(be.calls) == 4
    assert "Be brief." not in be.calls[0][0][-1].content  # system turns are not judged texts


def test_the_cache_answers_repeats_within_and_across_calls_and_is_bounded():
    be = ScriptedBackend(by_word)
    reward = reward_function(Judge("helpfulness", be, scoring=JSON), cache_size=2)
    assert reward(prompts=["q"] * 3, completions=["good", "good", "bad"]) == [5.0, 5.0, 2.0]
    assert len(be.calls) == 2 and reward.stats.requests == 2  # the repeat within the call is judged once
    assert reward(prompts=["q", "q"], completions=["bad", "good"]) == [2.0, 5.0]
    assert len(be.calls) == 2 and reward.stats.cache_hit_rate == 1.0
    reward(prompts=["q"], completions=["other"])  # a third judgment pushes out the least recently used
    reward(prompts=["q", "q"], completions=["bad", "good"])
    assert len(be.calls) == 4 and reward.stats.cache_hits == 1
    uncached = reward_function(Judge("helpfulness", ScriptedBackend(by_word), scoring=JSON), cache=False)
    uncached(prompts=["q"], completions=["good"])
    uncached(prompts=["q"], completions=["good"])
    assert uncached.stats.cache_hits == 0


def test_a_sqlite_cache_is_shared_across_reward_functions_and_runs(tmp_path):
    path = tmp_path / "judgments.sqlite"
    first = reward_function(Judge("helpfulness", ScriptedBackend(by_word), scoring=JSON), cache=path)
    assert first(prompts=["q", "q"], completions=["good", "bad"]) == [5.0, 2.0]
    first.close()

    def refuse(prompt, params):
        raise AssertionError("a cached judgment was asked again")

    again = reward_function(Judge("helpfulness", ScriptedBackend(refuse), scoring=JSON), cache=path)
    assert again(prompts=["q", "q"], completions=["bad", "good"]) == [2.0, 5.0]
    assert again.stats.cache_hit_rate == 1.0
    again.close()


def test_unscored_judgments_are_none_never_a_number_and_are_not_cached():
    def answer(prompt, params):
        return "I cannot decide." if "shrug" in prompt[-1].content else by_word(prompt, params)

    be = ScriptedBackend(answer, fail=lambda p, s: "backend" if "crash" in p[-1].content else None)
    reward = reward_function(Judge("helpfulness", be, scoring=JSON))
    seen = Metrics()
    out = reward(prompts=["q"] * 3, completions=["shrug", "crash", "good"], **seen.kwargs())
    assert out == [None, None, 5.0]
    errors = seen.extra["judge_helpfulness_error"]
    assert errors[1].startswith("backend error") and errors[0] and errors[2] is None
    assert seen.metrics["rewards/judge_helpfulness/abstain_rate"] == pytest.approx(2 / 3)
    assert "rewards/judge_helpfulness/score_std" not in seen.metrics  # one score: no spread is made up
    reward(prompts=["q"], completions=["crash"])
    assert len(be.calls) == 4  # the failed request is asked again, the others are not


def test_pairwise_rewards_are_win_rates_among_a_prompts_completions():
    be = ScriptedBackend(by_word)
    reward = reward_function(Judge("instruction_following", be, scoring=JSON))
    assert reward.range == (0.0, 1.0)
    out = reward(prompts=["p"] * 3 + ["q"] * 2 + ["r"], completions=["rank3", "rank1", "rank2", "rank1", "rank1", "rank9"])
    assert out[:3] == [1.0, 0.0, 0.5]  # beats both, loses both, one of each
    assert out[3:5] == [0.5, 0.5]  # a tie counts half for each
    assert out[5] is None and "no other completion" in reward.last[5].error
    assert len(be.calls) == 2 * (3 + 1)  # every pair of a prompt once, in both orders; nothing across prompts
    verdicts = Judge("instruction_following", ScriptedBackend(by_word), scoring=JSON).compare(
        [Item(prompt="p", response_a="rank3", response_b="rank1")]
    )
    assert verdicts[0].p_a_mean == 1.0


def test_one_rubric_of_a_judge_with_several_rewards_alone_on_the_same_backend():
    from judge.inputs._rubric import resolve_rubric

    verdict = {c.name: 4 for c in resolve_rubric("honesty").criteria}
    be = ScriptedBackend(lambda prompt, params: json.dumps(verdict))
    reward = reward_function(Judge(["helpfulness", "honesty"], be, scoring=JSON), "honesty")
    assert reward(prompts=["q"], completions=["a"]) == [4.0]
    assert len(be.calls) == 1 and "Rubric: honesty" in be.calls[0][0][0].content


def test_the_async_variant_gives_the_same_rewards():
    reward = areward_function(Judge("helpfulness", ScriptedBackend(by_word), scoring=JSON))
    assert isinstance(reward, AsyncJudgeReward) and asyncio.iscoroutinefunction(reward.__call__)
    out = asyncio.run(reward(prompts=["q", "q"], completions=["good", "meh"]))
    assert out == [5.0, 2.0] and reward.stats.scored == 2


def test_bad_use_fails_before_judging_with_the_values():
    be = ScriptedBackend(by_word)
    two = Judge(["helpfulness", "honesty"], be, scoring=JSON)
    with pytest.raises(ConfigError, match=r"2 rubrics \['helpfulness', 'honesty'\]: pass rubric="):
        reward_function(two)
    assert reward_function(two, "honesty").rubric.id == "honesty"
    with pytest.raises(ConfigError, match=r"scale must be 'rubric' or 'unit', got 'percent'"):
        reward_function(Judge("helpfulness", be), scale="percent")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"different ranges \(consistency 1-5, completeness 1-3\).*scale='unit'"):
        reward_function(Judge("factual_consistency", be))
    with pytest.raises(ConfigError, match=r"cache_size must be an integer >= 1, got 0"):
        reward_function(Judge("helpfulness", be), cache_size=0)
    ref = reward_function(Judge("factual_consistency", be), scale="unit")
    with pytest.raises(ConfigError, match=r"column 'reference', which was not passed; columns passed: \['answer'\]"):
        ref(prompts=["q"], completions=["a"], answer=["x"], log_metric=print)
    with pytest.raises(DataError, match=r"got 2 prompts for 1 completions"):
        ref(prompts=["q", "r"], completions=["a"], reference=["x"])
    with pytest.raises(DataError, match=r"content block of type 'image'"):
        ref(prompts=[[{"role": "user", "content": [{"type": "image"}]}]], completions=["a"], reference=["x"])
    assert be.calls == []


# ----------------------------------------------------------------------------------------------
# The real bundled judge


class CountingBackend:
    """The session's real backend, counting the prompts sent to it (results untouched)."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.prompts = 0

    def generate(self, prompts, params):
        self.prompts += len(prompts)
        return self._backend.generate(prompts, params)

    def __getattr__(self, name):
        return getattr(self._backend, name)


@pytest.fixture(scope="module")
def counted(hf_backend):
    return CountingBackend(hf_backend)


PROMPTS = ["What is 12 + 7?", "What is the capital of France?"]
ANSWERS = [["12 + 7 = 19.", "It is 21."], ["Paris.", "I like turtles."]]


@pytest.mark.model
def test_rewards_are_the_judges_logprob_scores_and_the_cache_spares_the_backend(counted):
    judge = Judge("helpfulness", counted)
    assert judge.plan(judge.rubrics[0]).method == "logprob"
    reward = reward_function(judge)
    prompts = [chat(p) for p in PROMPTS for _ in range(2)]
    completions = [chat(a, "assistant") for pair in ANSWERS for a in pair]
    before = counted.prompts
    out = reward(prompts=prompts, completions=completions)
    assert counted.prompts - before == 4
    assert all(isinstance(r, float) and 1.0 <= r <= 5.0 for r in out), out
    own = judge.score([Item(prompt=p, response=a) for p, pair in zip(PROMPTS, ANSWERS) for a in pair])
    assert all(j.status == "scored" for j in own)
    expected = [j.extra["expected"]["helpfulness"] for j in own]  # the logprob-weighted score, not the argmax
    assert out == pytest.approx(expected, abs=1e-6)
    assert any(r != round(r) for r in out)
    assert [r.keys[0] for r in reward.last] == [j.key for j in own]

    before = counted.prompts
    assert reward(prompts=prompts[::-1], completions=completions[::-1]) == out[::-1]
    assert counted.prompts == before and reward.stats.cache_hit_rate == 1.0


@pytest.mark.model
def test_an_item_too_long_for_the_judge_and_a_verdict_cut_short_are_none(counted):
    reward = reward_function(Judge("helpfulness", counted))
    long = " ".join(f"wave{i}" for i in range(3000))  # far beyond the judge's 4,096-token context
    before = counted.prompts
    out = reward(prompts=["Describe the sea.", "Describe the sea."], completions=[long, "The sea is salty."])
    assert out[0] is None and isinstance(out[1], float)
    assert "context is 4096" in reward.last[0].error and reward.stats.abstain_rate == 0.5
    assert counted.prompts - before == 2  # refused by the backend, not skipped by the reward

    # A judge that writes its JSON verdict with too few tokens to finish it: unscored, so None.
    short = Judge("helpfulness", counted, scoring=JSON, sampling=SamplingConfig(max_tokens=3))
    cut = reward_function(short)
    assert cut(prompts=["What is 2 + 2?"], completions=["4"]) == [None]
    assert cut.last[0].error.startswith("output truncated at max_tokens")
    (j,) = short.score([Item(prompt="What is 2 + 2?", response="4")])
    assert j.status == "unscored"


@pytest.mark.model
def test_pairwise_rewards_of_three_completions_match_judge_compare(counted):
    judge = Judge("instruction_following", counted)
    reward = reward_function(judge)
    texts = ["Blue.", "A rock, I think.", "Red"]
    before = counted.prompts
    out = reward(prompts=[chat("Name a colour.")] * 3, completions=[chat(t, "assistant") for t in texts])
    assert counted.prompts - before == 6  # three pairs, both orders
    assert all(isinstance(r, float) and 0.0 <= r <= 1.0 for r in out), out
    pairs = [(0, 1), (0, 2), (1, 2)]
    verdicts = judge.compare([Item(prompt="Name a colour.", response_a=texts[a], response_b=texts[b]) for a, b in pairs])
    assert all(v.status == "scored" and v.orders == ["AB", "BA"] for v in verdicts)
    wins: list[list[float]] = [[], [], []]
    for (a, b), v in zip(pairs, verdicts):
        wins[a].append(v.p_a_mean)
        wins[b].append(1.0 - v.p_a_mean)
    assert out == pytest.approx([sum(w) / 2 for w in wins], abs=1e-6)
    assert sum(out) == pytest.approx(1.5)  # each pair hands out one win between its two completions


# ----------------------------------------------------------------------------------------------
# Inside TRL's GRPOTrainer


def _grpo(tiny_model, tmp_path, reward, rows, **kw):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"), use_cpu=True, bf16=False, report_to="none", max_steps=2,
        per_device_train_batch_size=4, num_generations=2, max_completion_length=6, logging_steps=1,
        learning_rate=1e-3, beta=0.0, save_strategy="no", shuffle_dataset=False, seed=0, **kw,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=AutoTokenizer.from_pretrained(tiny_model))  # fmt: skip
    trainer.train()
    return trainer


def _same(trl_rewards, ours) -> bool:
    return len(trl_rewards) == len(ours) and all(
        (math.isnan(t) and o is None) or (o is not None and t == pytest.approx(o, rel=1e-6))
        for t, o in zip(trl_rewards, ours)
    )


@pytest.mark.model
def test_grpo_trains_on_the_judge_and_passes_unscored_completions_through(tiny_model, counted, tmp_path):
    reward = reward_function(Judge("factual_consistency", counted), scale="unit")
    # The last row's reference is too long for the judge: its completions are unscored.
    refs = ["Blue.", "Four.", "An apple.", " ".join(f"fact{i}" for i in range(2500))]
    prompts = ["Name a colour.", "What is two plus two?", "Give a fruit.", "Say hello."]
    rows = [{"prompt": chat(p), "reference": r} for p, r in zip(prompts, refs)]
    trainer = _grpo(tiny_model, tmp_path, reward, rows)

    name = reward.__name__
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert len(steps) == 2
    for h in steps:
        for metric in ("mean", "std", "abstain_rate", "score_mean", "score_std", "group_std", "cache_hit_rate"):
            assert f"rewards/{name}/{metric}" in h, sorted(h)
        assert 0.0 <= h[f"rewards/{name}/mean"] <= 1.0
    assert [h[f"rewards/{name}/abstain_rate"] for h in steps] == [0.0, 0.5]
    assert steps[1][f"rewards/{name}/mean"] == pytest.approx(reward.stats.score_mean, rel=1e-6)

    # The last call got the trainer's own completions, and TRL kept exactly the rewards returned.
    logged = trainer._logs
    assert [r.completion for r in reward.last] == [c[0]["content"] for c in logged["completion"]]
    assert [r.prompt for r in reward.last] == ["Give a fruit."] * 2 + ["Say hello."] * 2
    assert _same(list(logged["rewards"][name]), [r.reward for r in reward.last])
    assert [r.reward is None for r in reward.last] == [False, False, True, True]
    assert all("context is 4096" in r.error for r in reward.last[2:])
    assert list(logged["advantages"])[2:] == [0.0, 0.0]  # unscorable: no learning signal, no crash
    assert all(math.isfinite(a) for a in logged["advantages"])


@pytest.mark.model
def test_grpo_awaits_the_async_pairwise_judge_on_each_prompts_generations(tiny_model, counted, tmp_path):
    reward = areward_function(Judge("instruction_following", counted), name="judge_pairs")
    rows = [{"prompt": chat(p)} for p in ("Name a colour.", "Say hello.", "Give a fruit.", "Name a planet.")]
    before = counted.prompts
    trainer = _grpo(tiny_model, tmp_path, reward, rows)
    assert trainer._has_async_funcs  # TRL ran it on its event loop
    assert counted.prompts - before == 2 * 2 * 2  # per step two prompts, one pair each, both orders
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert all("rewards/judge_pairs/abstain_rate" in h and "rewards/judge_pairs/mean" in h for h in steps)
    out = list(trainer._logs["rewards"]["judge_pairs"])
    assert _same(out, [r.reward for r in reward.last]) and all(0.0 <= r <= 1.0 for r in out)
    assert out[0] + out[1] == pytest.approx(1.0) and out[2] + out[3] == pytest.approx(1.0)  # one pair per prompt


# ----------------------------------------------------------------------------------------------
# The async variant against a served judge (a real OpenAI-compatible vLLM server)


@pytest.mark.model
@pytest.mark.vllm
def test_the_async_reward_judges_through_a_served_judge_without_blocking_the_loop(served_judge):
    from judge.backends import create_backend

    backend = create_backend("openai", model="bundled", base_url=served_judge, max_retries=2)
    judge = Judge("helpfulness", backend)
    assert judge.plan(judge.rubrics[0]).method == "logprob"
    reward = areward_function(judge)
    prompts = [chat(p) for p in PROMPTS for _ in range(2)]
    completions = [chat(a, "assistant") for pair in ANSWERS for a in pair]
    seen = Metrics()

    async def run() -> tuple[list, int, list]:
        ticks, done = 0, False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        out = await reward(prompts=prompts, completions=completions, **seen.kwargs())
        done = True
        await task
        own = await judge.ascore([Item(prompt=p, response=a) for p, pair in zip(PROMPTS, ANSWERS) for a in pair])
        return out, ticks, own

    try:
        out, ticks, own = asyncio.run(run())
    finally:
        backend.close()
    assert all(isinstance(r, float) and 1.0 <= r <= 5.0 for r in out), out
    assert ticks > 3  # the event loop kept running while the server judged
    assert [r.keys[0] for r in reward.last] == [j.key for j in own]
    # Each reward is the expected score of the very judgment the server returned for it. (A second
    # request of the same prompts meets them in the server's prefix cache, which moves bf16 logits,
    # so `own` is compared by key, not by value.)
    served_judgments = [reward._memory.get(r.keys[0]) for r in reward.last]
    assert out == pytest.approx([j.extra["expected"]["helpfulness"] for j in served_judgments], abs=1e-6)
    assert all(j.judge.backend == "openai" for j in served_judgments)
    assert seen.metrics["rewards/judge_helpfulness/abstain_rate"] == 0.0
    again = asyncio.run(reward(prompts=prompts, completions=completions))
    assert again == out and reward.stats.cache_hit_rate == 1.0
