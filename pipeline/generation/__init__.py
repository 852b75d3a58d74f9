"""Stages that sample and score but do not train: they turn a policy's own completions into data
for the stages that do (Llama 3's rounds, expert iteration, RLAIF).

- `preferences`: the `generate_preferences` stage: K samples per prompt, scored, written as
  preference rows (rankings with ties unordered, or best/worst pairs) for dpo / reward_model / kto;
- `rejection`: the `rejection_sampling` stage: the best of K samples above a threshold, written as
  demonstrations for sft;
- `sampling`: what both share: the policy, K scored samples per prompt, in resumable chunks.
"""

__all__: list[str] = []
