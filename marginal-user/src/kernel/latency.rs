//! Path latency measuring: which program measures, attaching it when the first path asks,
//! and the maps user space keeps for it (the histograms, and the filter in front of them).
use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::PerCpuValues,
    programs::{
        BtfTracePoint, RawTracePoint, raw_trace_point::RawTracePointLinkId,
        tp_btf::BtfTracePointLinkId,
    },
};
use marginal_common::{
    LATENCY_ISSUE_PROGRAM, LATENCY_PER_REQUEST_PROGRAM, LATENCY_PROBE_READ_PROGRAM,
    LATENCY_PROGRAM, PathLatency, latency_filter_slot,
};

use super::probes::{KernelProbes, dev_name};

/// The ways the kernel side can measure a request's latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyProgram {
    /// The daemon's choice: `tp_btf` on `block_rq_complete`, the request's own start time
    /// read with direct loads.
    KernelStartTime,
    /// The same on a raw tracepoint through `bpf_probe_read_kernel`: where the kernel refuses
    /// [`LatencyProgram::KernelStartTime`].
    KernelStartTimeProbeRead,
    /// Bench only: a start time stored on `block_rq_issue` in a hash map keyed by the
    /// request, looked up and deleted at completion (5.11 and later).
    PerRequestMap,
}

impl LatencyProgram {
    pub fn describe(self) -> &'static str {
        match self {
            Self::KernelStartTime => "tp_btf:block_rq_complete",
            Self::KernelStartTimeProbeRead => "raw_tracepoint:block_rq_complete",
            Self::PerRequestMap => "tp_btf:block_rq_issue and tp_btf:block_rq_complete",
        }
    }

    /// The names its programs have in [`KernelProbes::program_stats`].
    pub fn stats_names(self) -> &'static [&'static str] {
        match self {
            // The raw tracepoint variant reports under the product's name, as the error
            // program's variants do.
            Self::KernelStartTime | Self::KernelStartTimeProbeRead => &[LATENCY_PROGRAM],
            Self::PerRequestMap => &[LATENCY_ISSUE_PROGRAM, LATENCY_PER_REQUEST_PROGRAM],
        }
    }
}

/// An attachment of a latency program, to detach.
pub(crate) enum LatencyLink {
    Btf(&'static str, BtfTracePointLinkId),
    Raw(&'static str, RawTracePointLinkId),
}

/// The filter word `word` for the measured devices `devs`: the bits of those whose
/// [`latency_filter_slot`] is in that word.
pub fn filter_word(devs: impl IntoIterator<Item = u32>, word: u32) -> u64 {
    devs.into_iter()
        .map(latency_filter_slot)
        .filter(|&(w, _)| w == word)
        .fold(0, |bits, (_, mask)| bits | mask)
}

impl KernelProbes {
    /// Measure with `program` instead of the best this kernel takes (benches); before any
    /// path is measured, or after [`KernelProbes::detach_latency`].
    pub fn choose_latency_program(&mut self, program: LatencyProgram) -> Result<()> {
        if !self.latency_links.is_empty() {
            bail!("a latency program is attached already");
        }
        self.latency_choice = Some(program);
        Ok(())
    }

    /// Measure the latency of the path `dev` (or stop). The first path turned on attaches the
    /// latency program, the last one turned off detaches it: while no path is measured, no
    /// completion pays anything for it. Turning on a path that is measured keeps its
    /// histograms.
    pub fn measure_latency(&mut self, dev: u32, on: bool) -> Result<()> {
        if !on {
            if self.latency_devs.remove(&dev) {
                self.write_filter_word(dev)?;
            }
            if self.latency.get(&dev, 0).is_ok() {
                self.latency.remove(&dev).with_context(|| {
                    format!("removing device {} from the latency map", dev_name(dev))
                })?;
            }
            // The last path off: completions stop paying for the program at all.
            if self.latency_devs.is_empty() && !self.latency_links.is_empty() {
                self.detach_latency()?;
            }
            return Ok(());
        }
        match &self.signals.latency {
            Some(Ok(())) => {}
            Some(Err(why)) => bail!("{why}"),
            None => {
                let attached = self.attach_latency();
                self.signals.latency =
                    Some(attached.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
                self.signals.latency_program = attached.as_ref().ok().copied();
                attached?;
            }
        }
        if self.latency.get(&dev, 0).is_err() {
            let cpus = aya::util::nr_cpus()
                .map_err(|(_, e)| e)
                .context("counting possible CPUs")?;
            let zero = PerCpuValues::try_from(vec![PathLatency::default(); cpus])?;
            self.latency
                .insert(dev, zero, 0)
                .with_context(|| format!("adding device {} to the latency map", dev_name(dev)))?;
        }
        // The histograms first, then the filter bit: the kernel finds them once it passes.
        if self.latency_devs.insert(dev) {
            self.write_filter_word(dev)?;
        }
        Ok(())
    }

    /// Detach the latency program (benches: the same loaded program on and off); the next
    /// path turned on attaches it again. Measured paths keep their histograms.
    pub fn detach_latency(&mut self) -> Result<()> {
        for link in self.latency_links.drain(..) {
            match link {
                LatencyLink::Btf(name, id) => {
                    let program: &mut BtfTracePoint = program(&mut self.ebpf, name)?;
                    program.detach(id)?;
                }
                LatencyLink::Raw(name, id) => {
                    let program: &mut RawTracePoint = program(&mut self.ebpf, name)?;
                    program.detach(id)?;
                }
            }
        }
        self.signals.latency = None;
        Ok(())
    }

    /// The latency histograms of a measured path, all CPUs added up.
    pub fn latency(&self, dev: u32) -> Option<PathLatency> {
        // A snapshot asks every path: a lookup of one not measured would be a failed syscall
        // (16,384 of them per scrape with as many paths).
        if !self.latency_devs.contains(&dev) {
            return None;
        }
        let per_cpu = self.latency.get(&dev, 0).ok()?;
        Some(sum_cpus(&per_cpu))
    }

    /// Every measured path and its histograms.
    pub fn latencies(&self) -> Vec<(u32, PathLatency)> {
        self.latency
            .iter()
            .filter_map(Result::ok)
            .map(|(dev, per_cpu)| (dev, sum_cpus(&per_cpu)))
            .collect()
    }

    fn write_filter_word(&mut self, dev: u32) -> Result<()> {
        let (word, _) = latency_filter_slot(dev);
        let bits = filter_word(self.latency_devs.iter().copied(), word);
        self.latency_filter
            .set(word, bits, 0)
            .with_context(|| format!("writing the latency filter for {}", dev_name(dev)))
    }

    /// Load (once) and attach the chosen latency program, or the best this kernel takes.
    fn attach_latency(&mut self) -> Result<LatencyProgram> {
        if let Err(why) = &self.request_layout {
            bail!("no request layout from kernel BTF: {why}");
        }
        // Parsed by aya only to load a tp_btf program, not to attach one again.
        let mut btf = None;
        let btf = &mut btf;
        let ebpf = &mut self.ebpf;
        let links = &mut self.latency_links;
        match self.latency_choice {
            Some(LatencyProgram::KernelStartTime) | None => {
                match attach_btf(ebpf, btf, LATENCY_PROGRAM, "block_rq_complete") {
                    Ok(link) => {
                        links.push(link);
                        return Ok(LatencyProgram::KernelStartTime);
                    }
                    Err(refused) if self.latency_choice.is_some() => return Err(refused),
                    Err(refused) => log::warn!(
                        "{refused:#}; measuring latency through bpf_probe_read_kernel instead"
                    ),
                }
                links.push(attach_raw(ebpf, LATENCY_PROBE_READ_PROGRAM)?);
                Ok(LatencyProgram::KernelStartTimeProbeRead)
            }
            Some(LatencyProgram::KernelStartTimeProbeRead) => {
                links.push(attach_raw(ebpf, LATENCY_PROBE_READ_PROGRAM)?);
                Ok(LatencyProgram::KernelStartTimeProbeRead)
            }
            Some(LatencyProgram::PerRequestMap) => {
                links.push(attach_btf(
                    ebpf,
                    btf,
                    LATENCY_PER_REQUEST_PROGRAM,
                    "block_rq_complete",
                )?);
                links.push(attach_btf(
                    ebpf,
                    btf,
                    LATENCY_ISSUE_PROGRAM,
                    "block_rq_issue",
                )?);
                Ok(LatencyProgram::PerRequestMap)
            }
        }
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("eBPF object has no program {name}"))?;
    Ok(program.try_into()?)
}

fn attach_btf(
    ebpf: &mut Ebpf,
    btf: &mut Option<aya::Btf>,
    name: &'static str,
    tracepoint: &str,
) -> Result<LatencyLink> {
    let program: &mut BtfTracePoint = program(ebpf, name)?;
    if program.fd().is_err() {
        let btf = match btf {
            Some(btf) => btf,
            None => btf.insert(aya::Btf::from_sys_fs().context("reading kernel BTF")?),
        };
        program
            .load(tracepoint, btf)
            .with_context(|| format!("the kernel's verifier rejected {name} (tp_btf)"))?;
    }
    let link = program
        .attach()
        .with_context(|| format!("attaching {name} to tp_btf:{tracepoint}"))?;
    Ok(LatencyLink::Btf(name, link))
}

fn attach_raw(ebpf: &mut Ebpf, name: &'static str) -> Result<LatencyLink> {
    let program: &mut RawTracePoint = program(ebpf, name)?;
    if program.fd().is_err() {
        program
            .load()
            .with_context(|| format!("the kernel's verifier rejected {name}"))?;
    }
    let link = program
        .attach("block_rq_complete")
        .context("attaching to raw tracepoint block_rq_complete")?;
    Ok(LatencyLink::Raw(name, link))
}

fn sum_cpus(per_cpu: &PerCpuValues<PathLatency>) -> PathLatency {
    let mut total = PathLatency::default();
    for cpu in per_cpu.iter() {
        total.add(cpu);
    }
    total
}

#[cfg(test)]
mod tests {
    use marginal_common::kernel_dev;

    use super::*;

    #[test]
    fn a_filter_word_holds_the_bits_of_its_devices_only() {
        let sda = kernel_dev(8, 0);
        let sdb = kernel_dev(8, 16);
        let (word, mask) = latency_filter_slot(sda);
        assert_eq!(filter_word([sda], word), mask);
        assert_eq!(filter_word([], word), 0);
        // A device of another word adds nothing to this one.
        let (other_word, _) = latency_filter_slot(sdb);
        assert_ne!(word, other_word, "sda and sdb share a word");
        assert_eq!(filter_word([sda, sdb], word), mask);
    }

    #[test]
    fn devices_sharing_a_bit_keep_it_until_both_are_gone() {
        // Two devices whose slots collide: found by search, so the test says what it uses.
        let sda = kernel_dev(8, 0);
        let slot = latency_filter_slot(sda);
        let twin = (1..u32::MAX)
            .map(|minor| kernel_dev(259, minor))
            .find(|&dev| latency_filter_slot(dev) == slot)
            .expect("some nvme minor shares sda's bit");
        assert_eq!(filter_word([sda, twin], slot.0), slot.1);
        assert_eq!(filter_word([twin], slot.0), slot.1);
    }
}
