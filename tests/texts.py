"""Hand-written posts of known tone and reaction mixes, shared by the atmosphere tests."""

from __future__ import annotations

TEXTS = {
    "en": {
        "pos": ("Great meetup tonight, thanks everyone!", "Love this community, so helpful!",
                "Congrats on the launch, amazing work!"),
        "neu": ("Who is going to the Friday meetup?", "Next meetup is on Tuesday in Berlin.",
                "What stack are you using for the backend?"),
        "neg": ("This is terrible, the meetup was cancelled again.", "Awful experience, total waste of time.",
                "Really disappointed and frustrated with this group."),
    },
    "zh": {
        "pos": ("太棒了，感谢大家的精彩分享！", "活动很成功，谢谢组织者", "恭喜上线，很赞"),
        "neu": ("周五的活动有谁去？", "下周二在杭州有分享会", "大家用什么技术栈？"),
        "neg": ("太失望了，活动又取消了，浪费时间", "体验很差，太糟糕了",
                "这个群越来越无聊，广告太多，我要退群了"),
    },
}  # fmt: skip
REACTIONS = {
    "pos": ("like", "love", "thanks", "insightful", "like", "laugh"),
    "neu": ("like", "insightful", "like", "thanks", "laugh"),
    "neg": ("sad", "angry", "report", "sad", "like"),
}
CALM = {"pos": 0.45, "neu": 0.45, "neg": 0.10}
BAD = {"pos": 0.05, "neu": 0.25, "neg": 0.70}
NEUTRAL = {"pos": 0.0, "neu": 1.0, "neg": 0.0}
