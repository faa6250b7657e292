"""A small 5-topic headline classification slice (written for these tests), in the engine's training format."""

from __future__ import annotations

SYSTEM = "Give the topic of the news headline: business, entertainment, politics, sports or tech. One word."

# A small 5-topic headline set (written for these tests), 12 per topic: 8 to train on, 4 held out.
HEADLINES: dict[str, list[str]] = {
    "business": [
        "Shares rise as bank reports record quarterly profit", "Oil prices fall after OPEC raises output",
        "Retailer cuts 2,000 jobs as sales slump", "Central bank holds interest rates steady",
        "Carmaker profits double on strong exports", "Airline shares slide after fuel costs jump",
        "Inflation eases for third month in a row", "Brewer agrees takeover deal worth 4bn",
        "Stock market hits five-year high", "Steel firm warns of weaker annual earnings",
        "Dollar slips against the euro on trade data", "Supermarket chain reports rising sales",
    ],
    "entertainment": [
        "Film star wins best actress award", "Pop band announces reunion tour",
        "New fantasy movie tops box office charts", "Singer releases surprise album",
        "Oscar nominations include three debut films", "TV comedy series renewed for fifth season",
        "Rock legend to headline summer festival", "Director signs deal for film sequel",
        "Musical breaks West End ticket record", "Actor joins cast of spy thriller",
        "Rapper tops album chart for second week", "Hollywood studio delays blockbuster release",
    ],
    "politics": [
        "Prime minister faces vote on new tax plan", "Opposition leader attacks government budget",
        "Parliament debates immigration bill", "Minister resigns after election defeat",
        "Voters head to polls in general election", "MPs reject plans for identity cards",
        "Party conference backs leader on reform", "Government unveils new policy on pensions",
        "Election campaign focuses on health service", "Senator calls for inquiry into spending",
        "Cabinet split over plans for new law", "Home secretary defends police powers",
    ],
    "sports": [
        "Striker scores twice as United win derby", "Champion wins Wimbledon final in five sets",
        "Coach names squad for World Cup qualifier", "Sprinter breaks 100m world record",
        "Rugby team beats rivals to win title", "Goalkeeper injured ahead of cup final",
        "Golfer leads open after first round", "Cricket side wins test series 3-1",
        "Boxer retains heavyweight belt", "Runner wins marathon in record time",
        "Club signs midfielder for 20m fee", "Tennis star pulls out of Australian Open",
    ],
    "tech": [
        "New smartphone features faster chip", "Software firm patches security flaw",
        "Broadband speeds double in rural areas", "Video game console sales hit record",
        "Hackers target online banking users", "Search engine launches email service",
        "Computer virus spreads through email", "Mobile networks test faster data service",
        "Chip maker unveils new processor", "Users warned over phishing websites",
        "Music download service adds million songs", "Web browser gains market share",
    ],
}  # fmt: skip


def split_headlines() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, held_out) lists of (headline, topic), topics interleaved."""
    train = [(h, t) for i in range(8) for t, hs in HEADLINES.items() for h in [hs[i]]]
    held_out = [(h, t) for i in range(8, 12) for t, hs in HEADLINES.items() for h in [hs[i]]]
    return train, held_out


def prompt(headline: str) -> list[dict[str, str]]:
    """The classification conversation up to the answer."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": headline}]


def example(headline: str, topic: str) -> dict[str, list[dict[str, str]]]:
    """A training example in the engine's OpenAI-messages format."""
    return {"messages": [*prompt(headline), {"role": "assistant", "content": topic}]}
