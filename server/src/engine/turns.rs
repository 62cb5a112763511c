//! The turns of a run: each reply's code run and its output shown back, a FINAL taken or sent
//! back, plain, empty and repeated replies steered, and the best-effort answer when turns run out.

use super::subcalls::SubCaller;
use super::{
    EngineError, FinalAnswer, Run, StopReason, final_call_text, is_empty_reply, is_placeholder,
    leading_final, parse_reply, prompt,
};
use crate::llm::ChatMessage;
use crate::repl::Repl;

impl Run<'_> {
    /// The turns of a run; `code_ran` when the engine's first search already looked at the
    /// workspace.
    pub(super) async fn iterate(
        &mut self,
        repl: &mut Repl,
        sub: &SubCaller<'_>,
        max: u32,
        mut code_ran: bool,
    ) -> Result<(String, StopReason, u32), EngineError> {
        // Replies in a row with neither code nor FINAL, after code has run.
        let mut plain_replies = 0;
        // Replies in a row that only repeated code already run.
        let mut repeats = 0;
        // Replies with nothing but empty fences.
        let mut empty_replies = 0;
        for iteration in 1..=max {
            let Some(reply) = self.ask_root(iteration).await? else {
                return Ok(self.partial(iteration));
            };
            let parsed = parse_reply(&reply);
            self.messages
                .push(ChatMessage::assistant(parsed.kept.clone()));
            if parsed.code_blocks.is_empty() {
                if parsed.unclosed_block {
                    self.push(iteration, ChatMessage::user(prompt::UNCLOSED_BLOCK));
                    continue;
                }
                match (parsed.final_answer, code_ran) {
                    (Some(answer), true) => {
                        match self.resolve_final(repl, answer, iteration).await? {
                            Some(text) => match self.check_final(&text, iteration).await {
                                None => return Ok((text, StopReason::Final, iteration)),
                                Some(complaint) => {
                                    self.push(iteration, ChatMessage::user(complaint));
                                    continue;
                                }
                            },
                            None => continue,
                        }
                    }
                    (_, false) => self.push(iteration, ChatMessage::user(prompt::NO_CODE_YET)),
                    (None, true) if is_empty_reply(&reply) => {
                        // Never an answer. A greedy model shown its empty reply writes it
                        // again: the reply leaves the conversation and the request before it
                        // gets a note, so the next call differs. A second one ends the run
                        // with what the model last saw.
                        self.messages.pop();
                        empty_replies += 1;
                        if empty_replies >= 2 {
                            return self
                                .best_effort(
                                    repl,
                                    iteration,
                                    StopReason::Stalled,
                                    prompt::STILL_EMPTY,
                                )
                                .await;
                        }
                        self.amend_last_request(iteration, prompt::EMPTY_REPLY);
                    }
                    (None, true) => {
                        plain_replies += 1;
                        // Small models often state the answer plainly instead of calling FINAL;
                        // asked once and answering plainly again, the reply is the answer.
                        if plain_replies >= 2 && !reply.trim().is_empty() {
                            return Ok((
                                reply.trim().to_string(),
                                StopReason::PlainAnswer,
                                iteration,
                            ));
                        }
                        self.push(iteration, ChatMessage::user(prompt::NEED_CODE_OR_FINAL));
                    }
                }
                continue;
            }
            plain_replies = 0;
            empty_replies = 0;
            code_ran = true;
            let mut sections = Vec::new();
            let mut all_repeats = true;
            for (index, code) in parsed.code_blocks.iter().enumerate() {
                let numbered = parsed.code_blocks.len() > 1;
                if let Some((turn, view)) = self.seen.earlier(code) {
                    let next = self.recipes.first().map_or("", |r| r.next);
                    sections.push(prompt::repeated_code(turn, view, next));
                    continue;
                }
                all_repeats = false;
                // Its own cell may count differently: the first search's ranking no longer
                // judges the answer.
                self.ranking = None;
                sub.set_iteration(iteration);
                let out = repl.exec(code, sub, self.index.as_deref()).await?;
                self.record_cell(iteration, index, code, &out);
                self.take_edits(&out);
                // `FINAL(The answer is ...)` written as code: Python rejects the prose, the
                // intent is plain.
                let answer = out.final_answer.clone().or_else(|| {
                    out.error
                        .as_deref()
                        .is_some_and(|e| e.contains("SyntaxError"))
                        .then(|| final_call_text(code).or_else(|| leading_final(code)))
                        .flatten()
                });
                let mut view = self.describe_cell(&out, numbered, index);
                // A cell whose answer was sent back may be run again as it is: the check that
                // sent it back may not again (the model insists, or repaired what it checks).
                let mut answered = false;
                match answer {
                    Some(a) if !is_placeholder(&a) => match self.check_final(&a, iteration).await {
                        None => return Ok((a, StopReason::Final, iteration)),
                        Some(complaint) => {
                            answered = true;
                            view.push_str(&complaint);
                            view.push('\n');
                        }
                    },
                    Some(a) => {
                        view.push_str(&prompt::template_answer(&a));
                        view.push('\n');
                    }
                    None => {}
                }
                let context_free = sub.take_context_free_prompts();
                if context_free > 0 {
                    view.push_str(prompt::SUB_CALL_NEEDS_TEXT);
                    view.push('\n');
                }
                if !answered {
                    self.seen.record(code, iteration, view.clone(), &out);
                }
                self.last_view = view.clone();
                sections.push(view);
            }
            repeats = if all_repeats { repeats + 1 } else { 0 };
            if repeats >= 2 {
                // Told once not to repeat itself, it did again: ask for its answer now.
                return self
                    .best_effort(repl, iteration, StopReason::Stalled, prompt::STALLED)
                    .await;
            }
            let mut text = format!(
                "Output of your code (turn {iteration} of {max}):\n{}",
                sections.join("\n")
            );
            if parsed.kept.len() < reply.trim_end().len() {
                text.push_str(&format!("\n{}", prompt::AFTER_CODE_IGNORED));
            }
            let steer = prompt::turn_steer(self.asked(), max - iteration, self.answer_holds());
            if !steer.is_empty() {
                text.push_str(&format!("\n\n{steer}"));
            }
            self.push_output(iteration, text);
        }
        self.best_effort(repl, max, StopReason::MaxIterations, prompt::OUT_OF_TURNS)
            .await
    }

    /// One last reply, asked for without code, is the run's best-effort answer.
    async fn best_effort(
        &mut self,
        repl: &mut Repl,
        iteration: u32,
        reason: StopReason,
        why: &str,
    ) -> Result<(String, StopReason, u32), EngineError> {
        let ask = prompt::last_call(why, self.asked());
        self.push(iteration, ChatMessage::user(ask));
        let Some(reply) = self.ask_root(iteration + 1).await? else {
            return Ok(self.partial(iteration));
        };
        let parsed = parse_reply(&reply);
        self.messages
            .push(ChatMessage::assistant(parsed.kept.clone()));
        // Code asked for at the end is no answer either: what it would have read is in the
        // last output the model saw.
        // Told not to write code, a block opening with a whole FINAL(...) line is its answer.
        let in_code = |b: &String| final_call_text(b).or_else(|| leading_final(b));
        let only_code = parsed.final_answer.is_none()
            && !parsed.code_blocks.is_empty()
            && parsed.code_blocks.iter().all(|b| in_code(b).is_none());
        let answer = match parsed.final_answer {
            Some(FinalAnswer::Text(t)) => t,
            Some(FinalAnswer::Var(name)) => repl
                .get_var(&name)
                .await?
                .unwrap_or_else(|| reply.trim().to_string()),
            None => match parsed.code_blocks.first().and_then(in_code) {
                Some(t) => t,
                None => reply.trim().to_string(),
            },
        };
        if only_code || is_placeholder(&answer) || is_empty_reply(&answer) {
            // No answer after all: what the model last saw is worth more than the template.
            let seen = match self.last_view.trim() {
                "" => "Nothing was found.".to_string(),
                v => format!("The last output the model saw:\n\n{v}"),
            };
            return Ok((
                format!("**No answer**: the model gave none.\n\n{seen}"),
                reason,
                iteration,
            ));
        }
        // No turn is left to repair it: the check only says how it stands.
        self.final_verdict(&answer, iteration).await;
        Ok((answer, reason, iteration))
    }

    /// The text of a FINAL given outside code; `None` (after telling the model) when it names a
    /// variable that does not exist.
    async fn resolve_final(
        &mut self,
        repl: &mut Repl,
        answer: FinalAnswer,
        iteration: u32,
    ) -> Result<Option<String>, EngineError> {
        match answer {
            FinalAnswer::Text(t) if is_placeholder(&t) => {
                self.push(iteration, ChatMessage::user(prompt::template_answer(&t)));
                Ok(None)
            }
            FinalAnswer::Text(t) => Ok(Some(t)),
            FinalAnswer::Var(name) => match repl.get_var(&name).await? {
                Some(v) => Ok(Some(v)),
                None => {
                    self.push(
                        iteration,
                        ChatMessage::user(format!(
                            "There is no variable named `{name}` in the REPL. Put the answer itself inside FINAL(...) instead."
                        )),
                    );
                    Ok(None)
                }
            },
        }
    }
}
